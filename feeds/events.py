"""What gets published to chat connections: the only module that publishes chat events.

Room frames are encoded once here and sent once to the room's group on the Pulse channel
layer (feeds.live), whatever the size of the room; each server process's hub writes
them to its own sockets in the room, and any other consumer in the group gets them as
messages. Per-user events (close, re-check access) reach every socket of the user on
every process the same way. Everything that follows a database change is published after
commit; a publish that fails is logged, and clients backfill the stored messages when
they reconnect.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
from django.db import transaction

from feeds import live, protocol
from realtime import metrics
from realtime.layer import pulse_layer
from realtime.wire import stamped, user_group

logger = logging.getLogger(__name__)


def _publish(group: str, message: dict[str, Any]) -> None:
    pulse_layer().publish_sync([(group, message)])  # a failure is logged there


async def _apublish(group: str, message: dict[str, Any]) -> None:
    try:
        await pulse_layer().group_send(group, message)
    except (redis.RedisError, OSError) as exc:
        logger.error("chat publish to %s failed (clients backfill it): %s", group, exc)
        metrics.PUBLISH_FAILURES.inc()


def message_broadcast_on_commit(*, room_id: int, data: dict[str, Any]) -> None:
    """Send `broadcast` to everyone in the room once the message row is committed."""
    group = live.room_group(room_id)
    # Encoded at commit, so `timestamp` is when the message became visible.
    transaction.on_commit(
        lambda: _publish(
            group,
            stamped({"type": live.MESSAGE, "text": protocol.encode(protocol.broadcast(data))}),
        ),
        robust=True,
    )


async def typing_broadcast(*, room_id: int, user_id: int, username: str) -> None:
    """Tell the room, except the typist's own tabs, that `username` is typing."""
    text = protocol.encode(protocol.typing(user=username))
    await _apublish(
        live.room_group(room_id),
        stamped({"type": live.TYPING, "text": text, "skip_user": user_id}),
    )


async def presence_broadcast(*, room_id: int, joined: list[str], left: list[str]) -> None:
    text = protocol.encode(protocol.presence(joined=joined, left=left))
    await _apublish(live.room_group(room_id), stamped({"type": live.PRESENCE, "text": text}))


def user_sockets_close_on_commit(*, user_id: int, code: int, session_key: str = "") -> None:
    """Close the user's chat sockets on every process: those opened with `session_key`
    (a logout), or all of them without one (password change, deactivation)."""
    message = {"type": live.CLOSE, "code": code, "session": session_key}
    transaction.on_commit(lambda: _publish(user_group(user_id), message), robust=True)


def room_recheck_on_commit(*, room_id: int) -> None:
    """Make every connection in the room re-check its access (privacy, members, deletion)."""
    group = live.room_group(room_id)
    transaction.on_commit(lambda: _publish(group, {"type": live.RECHECK}), robust=True)


def user_recheck_on_commit(*, user_id: int) -> None:
    """Make every chat socket of the user re-check its access (their memberships changed)."""
    group = user_group(user_id)
    transaction.on_commit(lambda: _publish(group, {"type": live.RECHECK}), robust=True)
