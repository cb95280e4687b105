"""Chat on the Pulse channel layer: the groups a socket joins and what they carry.

A room is the Channels group `chat.room.<id>`; each user's sockets are also in the
user's group (realtime.wire.user_group), which every live connection of theirs shares.
feeds.events publishes to these groups; the consumer's outbox joins them on this
process's hub (realtime.hub), which writes room frames to every local member once
encoded. Any other consumer that joins a room's group gets the same messages:

- `chat.message`, `chat.typing`, `chat.presence`: `text` is the server frame as chat
  sockets get it (docs/chat-protocol.md); `chat.typing` has `skip_user` (the typist);
- `chat.recheck`: access to the room changed; a member re-checks it;
- `chat.close` (user group): `code`, and `session` ("" = every session of the user).
"""

from __future__ import annotations

from realtime.hub import Unavailable
from realtime.layer import pulse_layer
from realtime.outbox import WEBSOCKETS, Outbox
from realtime.wire import user_group

__all__ = ["CLOSE", "MESSAGE", "PRESENCE", "RECHECK", "TYPING", "Unavailable"]

MESSAGE, TYPING, PRESENCE = "chat.message", "chat.typing", "chat.presence"
RECHECK, CLOSE = "chat.recheck", "chat.close"


def room_group(room_id: int) -> str:
    return f"chat.room.{room_id}"


# A room's messages are also SSE events (`message`) on the channel `chat-<room id>`, for
# clients without WebSockets (feeds.chat_channel registers the kind and its replay).
SSE_KIND, SSE_EVENT = "chat", "message"


def sse_channel(room_id: int) -> str:
    return f"{SSE_KIND}-{room_id}"


async def join(outbox: Outbox, *, room_id: int) -> None:
    """Deliver the room's and the user's messages to `outbox` once Redis confirmed both
    (Unavailable if it did not in time)."""
    layer = pulse_layer()
    groups = (room_group(room_id), user_group(outbox.user_id))
    await layer.hub().join(outbox, [layer.group_channel(group) for group in groups])


def leave(outbox: Outbox) -> None:
    pulse_layer().hub().leave(outbox)


def room_version(room_id: int) -> int | None:
    """Unchanged while no message reached the room on this process (realtime.hub.version)."""
    layer = pulse_layer()
    return layer.hub().version(layer.group_channel(room_group(room_id)))


def local_sockets() -> int:
    """Chat sockets this process delivers to (a gauge of GET /api/health/)."""
    return sum(hub.count(WEBSOCKETS) for hub in pulse_layer().hubs())


def subscribed_channels() -> int:
    """Redis channels this process is subscribed to (a gauge of GET /api/health/)."""
    return sum(len(hub.members) for hub in pulse_layer().hubs())
