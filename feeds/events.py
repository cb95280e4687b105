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
from realtime.wire import event_message, stamped, user_group

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
    # The same data on the room's SSE channel (feeds.live.sse_channel), under the message's id
    # with its predecessor as `prev` (0 for the first), in the same round trip.
    channel = live.sse_channel(room_id)

    def publish() -> None:
        # Encoded at commit, so `timestamp` is when the message became visible.
        text = protocol.encode(protocol.broadcast(data))
        sse = event_message(
            channel, live.SSE_EVENT, protocol.encode(data), data["id"], data.get("prev") or 0
        )
        pulse_layer().publish_sync(
            [(group, stamped({"type": live.MESSAGE, "text": text})), (channel, sse)]
        )

    transaction.on_commit(publish, robust=True)


def _room_change_on_commit(room_id: int, frame: dict[str, Any], sse_data: dict[str, Any]) -> None:
    # An ordinary room frame, in the room's order with its broadcasts. On the SSE channel
    # it carries no id: it is not a new position in the room (the message's own id is
    # behind every reader already), and a reader that misses it gets the message's
    # current state from history.
    group, channel = live.room_group(room_id), live.sse_channel(room_id)
    kind = frame["type"]

    def publish() -> None:
        text = protocol.encode(frame)
        sse = event_message(channel, kind, protocol.encode(sse_data), None)
        pulse_layer().publish_sync(
            [(group, stamped({"type": live.MESSAGE, "text": text})), (channel, sse)]
        )

    transaction.on_commit(publish, robust=True)


def message_edited_on_commit(*, room_id: int, data: dict[str, Any]) -> None:
    """Send `message_edited` (the message as history gives it) to the room after commit."""
    _room_change_on_commit(room_id, protocol.message_edited(data), data)


def message_deleted_on_commit(*, room_id: int, message_id: int) -> None:
    """Send `message_deleted` to the room once the tombstone is committed."""
    _room_change_on_commit(room_id, protocol.message_deleted(message_id), {"id": message_id})


def reaction_on_commit(*, room_id: int, frame: dict[str, Any]) -> None:
    """Send a `reaction` change to the room (and its SSE channel) after commit."""
    _room_change_on_commit(room_id, frame, {k: v for k, v in frame.items() if k != "type"})


def read_marker_sync_on_commit(*, user_id: int, room: str, last_read_id: int) -> None:
    """Tell every chat socket of the user, on every process, how far they have read `room`
    (their other tabs drop its unread divider; any room's socket relays it to its page)."""
    text = protocol.encode(protocol.read(room=room, last_read_id=last_read_id))
    message = stamped({"type": live.MESSAGE, "text": text})
    transaction.on_commit(lambda: _publish(user_group(user_id), message), robust=True)


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
