"""What gets published to chat connections: the only module that talks to the channel layer.

Room frames are encoded once here and handed to every connection in the room, on any
server process, as `chat.frame` events that consumers write out as they are; how they
travel (today one channel-layer group per room) can change without touching consumers.
Group names: `chat-room-<id>` (everyone in a room), `ws-user-<id>` (every chat socket
of one user, whatever the room).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

from feeds import protocol


def room_group(room_id: int) -> str:
    return f"chat-room-{room_id}"


def user_group(user_id: int) -> str:
    return f"ws-user-{user_id}"


async def _send(group: str, event: dict[str, Any]) -> None:
    await get_channel_layer().group_send(group, event)


async def _room_frame(room_id: int, frame: dict[str, Any], *, skip_user: int | None = None) -> None:
    await _send(
        room_group(room_id),
        {"type": "chat.frame", "text": protocol.encode(frame), "skip_user": skip_user},
    )


def message_broadcast_on_commit(*, room_id: int, data: dict[str, Any]) -> None:
    """Send `broadcast` to everyone in the room once the message row is committed."""
    transaction.on_commit(lambda: async_to_sync(_room_frame)(room_id, protocol.broadcast(data)))


async def typing_broadcast(*, room_id: int, user_id: int, username: str) -> None:
    """Tell the room, except the typist's own tabs, that `username` is typing."""
    await _room_frame(room_id, protocol.typing(user=username), skip_user=user_id)


async def presence_broadcast(*, room_id: int, joined: list[str], left: list[str]) -> None:
    await _room_frame(room_id, protocol.presence(joined=joined, left=left))


def user_sockets_close_on_commit(*, user_id: int, code: int) -> None:
    """Close every chat socket of the user, on every process (logout, deactivation)."""
    transaction.on_commit(
        lambda: async_to_sync(_send)(user_group(user_id), {"type": "chat.close", "code": code})
    )


def room_recheck_on_commit(*, room_id: int) -> None:
    """Make every connection in the room re-check its access (privacy, members, deletion)."""
    transaction.on_commit(
        lambda: async_to_sync(_send)(room_group(room_id), {"type": "chat.recheck"})
    )


def user_recheck_on_commit(*, user_id: int) -> None:
    """Make every chat socket of the user re-check its access (their memberships changed)."""
    transaction.on_commit(
        lambda: async_to_sync(_send)(user_group(user_id), {"type": "chat.recheck"})
    )
