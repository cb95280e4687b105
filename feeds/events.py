"""What gets published to chat connections: the only module that publishes chat events.

Room frames are encoded once here and published once, whatever the size of the room;
each server process's hub (feeds.fanout) writes them to its own sockets in the room.
Per-user events (close, re-check access) reach every socket of the user on every
process the same way. Everything that follows a database change is published after
commit; a publish that fails is logged, and clients backfill the stored messages when
they reconnect.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction

from feeds import fanout, protocol


def _room_frame(frame: dict[str, Any], *, skip_user: int | None = None) -> str:
    return fanout.envelope(
        fanout.FRAME, "" if skip_user is None else skip_user, protocol.encode(frame)
    )


def message_broadcast_on_commit(*, room_id: int, data: dict[str, Any]) -> None:
    """Send `broadcast` to everyone in the room once the message row is committed."""
    channel = fanout.room_channel(room_id)
    # Encoded at commit, so `timestamp` is when the message became visible.
    transaction.on_commit(
        lambda: fanout.publish(channel, _room_frame(protocol.broadcast(data))),
        robust=True,
    )


async def typing_broadcast(*, room_id: int, user_id: int, username: str) -> None:
    """Tell the room, except the typist's own tabs, that `username` is typing."""
    await fanout.apublish(
        fanout.room_channel(room_id),
        _room_frame(protocol.typing(user=username), skip_user=user_id),
    )


async def presence_broadcast(*, room_id: int, joined: list[str], left: list[str]) -> None:
    await fanout.apublish(
        fanout.room_channel(room_id),
        _room_frame(protocol.presence(joined=joined, left=left)),
    )


def user_sockets_close_on_commit(*, user_id: int, code: int, session_key: str = "") -> None:
    """Close the user's chat sockets on every process: those opened with `session_key`
    (a logout), or all of them without one (password change, deactivation)."""
    arg = f"{code}:{session_key}" if session_key else code
    transaction.on_commit(
        lambda: fanout.publish(fanout.user_channel(user_id), fanout.envelope(fanout.CLOSE, arg)),
        robust=True,
    )


def room_recheck_on_commit(*, room_id: int) -> None:
    """Make every connection in the room re-check its access (privacy, members, deletion)."""
    transaction.on_commit(
        lambda: fanout.publish(fanout.room_channel(room_id), fanout.envelope(fanout.RECHECK)),
        robust=True,
    )


def user_recheck_on_commit(*, user_id: int) -> None:
    """Make every chat socket of the user re-check its access (their memberships changed)."""
    transaction.on_commit(
        lambda: fanout.publish(fanout.user_channel(user_id), fanout.envelope(fanout.RECHECK)),
        robust=True,
    )
