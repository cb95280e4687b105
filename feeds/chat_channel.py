"""A chat room as a live channel, `chat-<room id>`: its messages over SSE and long polls.

Where WebSockets are blocked, a room page reads the room from `/events/?channel=chat-<id>`
(or `/api/notifications/poll/?channel=chat-<id>`) and posts over HTTP. Each new message
is published to the channel with the same JSON as the WebSocket `broadcast` `data`,
under the message's id, with the room's previous message as `prev`: the stream's own
replay (this module's source, reading the Message table) fills any gap, so a client that
reconnects with `Last-Event-ID` gets every message once. Readable by whoever may enter the
room (feeds.access), as the registry asks of every channel (realtime.channels).
"""

from __future__ import annotations

import json
from typing import Any

from django.db.models import Max
from django_eventstream.event import Event

from feeds import access, selectors
from feeds.live import SSE_EVENT, SSE_KIND
from feeds.models import Message
from realtime.api import STORAGE, register_channel

_ROOM_ID = r"[1-9][0-9]{0,17}"


def _may_enter(user: Any, key: str | None) -> bool:
    return key is not None and access.rooms_visible_to(user).filter(pk=int(key)).exists()


class ChatReplay:
    """The room's messages after an id, oldest first, as they were broadcast (without the
    extra client fields, which are not stored)."""

    def current_id(self, channel: str, key: str) -> int:
        latest = Message.objects.filter(room_id=int(key)).aggregate(top=Max("id"))["top"]
        return latest or 0

    def events_after(self, channel: str, key: str, last_id: int, limit: int) -> list[Event]:
        messages, _ = selectors.message_history(room_id=int(key), after=last_id, limit=limit)
        return [
            Event(channel, SSE_EVENT, json.dumps(m, separators=(",", ":")), id=m["id"])
            for m in messages
        ]


def register() -> None:
    """Add the `chat` kind to the channel registry (FeedsConfig.ready)."""
    register_channel(
        SSE_KIND, can_read=_may_enter, replay=STORAGE, key=_ROOM_ID, source=ChatReplay()
    )
