"""What reached Redis: the SSE events the services published to the channel layer."""

from __future__ import annotations

from typing import Any

from channels_redis.serializers import registry

from realtime.wire import EVENT

GROUPS_PATTERN = "asgi__group__*"  # every group of the Pulse layer (prefix "asgi")

_serializer = registry.get_serializer("msgpack")


def published(ps: Any) -> list[dict[str, Any]]:
    """The `pulse.event` messages received since the last call, in order."""
    out = []
    while (message := ps.get_message(timeout=0.3)) is not None:
        if message["type"] == "pmessage":
            decoded = _serializer.deserialize(message["data"])
            if decoded.get("type") == EVENT:
                out.append(decoded)
    return out
