"""Tests only: Pulse's ASGI app plus a plain Channels consumer, as a site would add one.

`/ws/plain/?group=<name>&group=...` joins those groups with the standard `group_add` and
forwards every message the channel layer hands it to its client; a client frame
`{"group": ..., "message": {...}}` is `group_send`-ed. Nothing here knows Pulse.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
get_asgi_application()

from channels.generic.websocket import AsyncJsonWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path, re_path  # noqa: E402

from config.asgi import application as pulse  # noqa: E402


class PlainConsumer(AsyncJsonWebsocketConsumer):
    """The consumer every Channels tutorial writes."""

    async def connect(self) -> None:
        query = parse_qs(self.scope["query_string"].decode())
        self.joined = query.get("group", [])
        for group in self.joined:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await self.send_json({"type": "joined", "groups": self.joined})

    async def disconnect(self, code: int) -> None:
        for group in self.joined:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.channel_layer.group_send(content["group"], content["message"])

    # What Pulse sends to the groups this consumer may join (README, "Use it from your code").
    async def chat_message(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def chat_presence(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def chat_typing(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def pulse_event(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def test_hello(self, event: dict[str, Any]) -> None:
        await self.send_json(event)


application = ProtocolTypeRouter(
    {
        "http": pulse,
        "websocket": URLRouter([path("ws/plain/", PlainConsumer.as_asgi()), re_path(r"", pulse)]),
    }
)
