"""The chat WebSocket (`/ws/chat/<slug>/`): one connection of one user in one room.

Thin like a view: check access, validate frames (feeds.protocol), call services off
the event loop, relay room events. Identity comes from the session only.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from feeds import access, events, presence, protocol, ratelimit, selectors, services
from feeds.models import Room


@database_sync_to_async
def _room_entry(user: Any, slug: str) -> Room | None:
    return selectors.room_entry(user=user, slug=slug)


@database_sync_to_async
def _history(room_id: int, request: protocol.HistoryIn) -> tuple[list[dict[str, Any]], bool]:
    return selectors.message_history(
        room_id=room_id, before=request.before, after=request.after, limit=request.limit
    )


@database_sync_to_async
def _post(room: Room, author: Any, message: protocol.MessageIn) -> tuple[dict[str, Any], bool]:
    return services.message_post(
        room=room,
        author=author,
        content=message.content,
        client_msg_id=message.client_msg_id,
        client_fields=message.client_fields,
    )


@database_sync_to_async
def _can_stay(user_id: int, room_id: int) -> bool:
    return access.can_stay(user_id=user_id, room_id=room_id)


class ChatConsumer(AsyncWebsocketConsumer):
    room: Room | None = None
    user: Any = None
    closing = False
    heartbeat_task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        user = self.scope.get("user")
        room = await _room_entry(user, self.scope["url_route"]["kwargs"]["slug"])
        if room is None:
            await self.close()  # before accept(): daphne answers the handshake with 403
            return
        self.room, self.user = room, user
        self.groups = [events.room_group(room.pk), events.user_group(user.pk)]
        for group in self.groups:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.accept()
        await presence.enter(**self._presence_id())
        # Read after joining the group: a message is in the history, live, or both.
        history, _ = await _history(
            room.pk, protocol.HistoryIn(None, None, protocol.WELCOME_HISTORY)
        )
        online = await presence.online(room_id=room.pk)
        await self.send_frame(
            protocol.welcome(room=room.slug, user=user.username, history=history, online=online)
        )
        self.heartbeat_task = asyncio.create_task(self._heartbeat())

    async def disconnect(self, code: int) -> None:
        if self.heartbeat_task is not None:
            self.heartbeat_task.cancel()
        if self.room is not None:
            await presence.leave(**self._presence_id())

    def _presence_id(self) -> dict[str, Any]:
        return {
            "room_id": self.room.pk,
            "username": self.user.username,
            "conn_id": self.channel_name,
        }

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(presence.HEARTBEAT_SECONDS * random.uniform(0.8, 1.0))
            await presence.heartbeat(**self._presence_id())

    async def _close(self, code: int) -> None:
        if not self.closing:
            self.closing = True
            await self.close(code=code)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.send(text_data=protocol.encode(frame))

    # ------------------------------------------------------------ client frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return  # frames queued behind a close
        data: dict[str, Any] = {}
        kind = ""
        refused: protocol.FrameError | None = None
        try:
            data = protocol.parse(text_data)
            kind = protocol.frame_type(data)
        except protocol.FrameError as exc:
            refused = exc
        verdict = await ratelimit.frame_verdict(user_id=self.user.pk, cost=protocol.cost(kind))
        if verdict.flood:
            await self._close(protocol.CLOSE_RATE_LIMITED)
            return
        if not verdict.allowed:
            refused = protocol.rate_limited(data)
        try:
            if refused is not None:
                raise refused
            await self._handlers[kind](self, data)
        except protocol.FrameError as exc:
            await self.send_frame(
                protocol.error(exc.code, exc.message, client_msg_id=exc.client_msg_id)
            )

    async def on_message(self, data: dict[str, Any]) -> None:
        message = protocol.message_in(data)
        stored, created = await _post(self.room, self.user, message)
        if not created:
            await self.send_frame(protocol.ack_duplicate(stored))
        # A new message reaches this connection too, as the room's broadcast.

    async def on_history(self, data: dict[str, Any]) -> None:
        request = protocol.history_in(data)
        messages, has_more = await _history(self.room.pk, request)
        await self.send_frame(protocol.history(messages, has_more=has_more, request=request))

    async def on_typing(self, data: dict[str, Any]) -> None:
        await services.typing_announce(
            room_id=self.room.pk, user_id=self.user.pk, username=self.user.username
        )

    async def on_join(self, data: dict[str, Any]) -> None:
        # Sent by clients written for plain `ws` servers; identity stays the session's.
        await self.send_frame(protocol.ack_join(room=self.room.slug, user=self.user.username))

    _handlers: dict[str, Callable[[ChatConsumer, dict[str, Any]], Awaitable[None]]] = {
        "message": on_message,
        "history": on_history,
        "typing": on_typing,
        "join": on_join,
    }

    # ------------------------------------------------------------ events from feeds.events

    async def chat_frame(self, event: dict[str, Any]) -> None:
        if not self.closing and event.get("skip_user") != self.user.pk:
            await self.send(text_data=event["text"])

    async def chat_close(self, event: dict[str, Any]) -> None:
        await self._close(event["code"])

    async def chat_recheck(self, event: dict[str, Any]) -> None:
        if not self.closing and not await _can_stay(self.user.pk, self.room.pk):
            await self._close(protocol.CLOSE_ACCESS_REVOKED)
