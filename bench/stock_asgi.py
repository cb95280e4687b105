"""Benchmarks only: the *stock* chat baseline, a tutorial-style Channels consumer.

`daphne bench.stock_asgi:application` serves the same `/ws/chat/<slug>/` URL as the real
app, so one load client measures both, but behind it is the Channels tutorial's consumer:
a channel-layer group per room, `group_send` per message, and each member's consumer
woken to encode and send the frame. It checks only that the user is signed in (no room
access rules, nothing stored): never route to it outside bench/. It refuses to load
unless the database is a throwaway one that bench/ created (SQLite in the temp directory,
or a PostgreSQL database named rtbench_*).
"""

from __future__ import annotations

import json
import os
import time

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_http = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402
from django.urls import path  # noqa: E402

from bench.throwaway_db import require_throwaway_database  # noqa: E402

require_throwaway_database(settings.DATABASES["default"], owner="bench.stock_asgi")


class TutorialChatConsumer(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        self.room_group_name = f"chat_{self.scope['url_route']['kwargs']['slug']}"
        await self.channel_layer.group_add(self.room_group_name, self.channel_name)
        await self.accept()
        await self.send(text_data=json.dumps({"type": "welcome"}))

    async def disconnect(self, code: int) -> None:
        if hasattr(self, "room_group_name"):
            await self.channel_layer.group_discard(self.room_group_name, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None):
        message = json.loads(text_data or "{}")
        await self.channel_layer.group_send(
            self.room_group_name, {"type": "chat.message", "message": message}
        )

    async def chat_message(self, event: dict) -> None:
        frame = {
            "type": "broadcast",
            "data": event["message"],
            "timestamp": int(time.time() * 1000),
        }
        await self.send(text_data=json.dumps(frame))


application = ProtocolTypeRouter(
    {
        "http": django_http,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(
                URLRouter([path("ws/chat/<slug:slug>/", TutorialChatConsumer.as_asgi())])
            )
        ),
    }
)
