"""The chat WebSocket (`/ws/chat/<slug>/`): one connection of one user in one room.

Thin like a view: check access, validate frames (feeds.protocol), call services off
the event loop. Room events do not pass through here: the process's hub (realtime.hub,
the receiving side of the Pulse channel layer) writes them to the socket's outbox
(realtime.outbox), which every frame of the socket goes through, in order and bounded.
Identity comes from the session only.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from channels.consumer import get_handler_name
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer

from feeds import (
    access,
    chat_actions,
    heartbeat,
    live,
    presence,
    protocol,
    services,
    welcome,
)
from feeds.models import Room
from realtime import connection_caps
from realtime.db import chat_database
from realtime.outbox import OPEN, Outbox

logger = logging.getLogger(__name__)


@chat_database
def _can_stay(user_id: int, room_id: int) -> bool:
    return access.can_stay(user_id=user_id, room_id=room_id)


class ChatConsumer(AsyncWebsocketConsumer):
    # Room and user events come from this process's hub (feeds.live: the channel layer's
    # groups), written straight to the socket's outbox, not through a channel of its own:
    # a socket costs no channel and no dispatch per message.
    channel_layer_alias = None
    room: Room | None = None
    user: Any = None
    outbox: Outbox | None = None
    conn_id = ""
    session_key = ""
    counted = False  # holds one of the user's connection slots (realtime.connection_caps)
    # Presence, caps and the is_active check are kept by the process's one heartbeat.
    _heartbeat: heartbeat.Socket | None = None
    _rechecks: set[asyncio.Task[None]] | None = None  # created by the first recheck

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        # Channels' loop (await_many_dispatch) wraps every receive in a new task and an
        # asyncio.wait, ~2 KB per idle socket; with no channel layer one await does.
        self.scope = scope
        self.channel_layer = None
        self.base_send = send
        try:
            while True:
                await self.dispatch(await receive())
        except StopConsumer:
            pass

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every handler, a thread hop
        # per client frame; here every ORM call is a realtime.db helper, which tidies the
        # connections itself in its own thread.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        user = self.scope.get("user")
        room = await chat_actions.room_entry(user, self.scope["url_route"]["kwargs"]["slug"])
        if room is None:
            await self.close()  # before accept(): daphne answers the handshake with 403
            return
        self.room, self.user, self.conn_id = room, user, uuid.uuid4().hex
        session = self.scope.get("session")
        self.session_key = (session.session_key if session is not None else None) or ""
        await self.accept()
        if not await connection_caps.acquire_async(
            kind=connection_caps.CHAT, user_id=user.pk, conn_id=self.conn_id
        ):
            await self._refuse_over_cap()
            return
        self.counted = True
        self.outbox = Outbox(self.base_send, user_id=user.pk, on_control=self._control, held=True)
        try:
            await live.join(self.outbox, room_id=room.pk)
        except live.Unavailable:
            self.outbox.close(protocol.CLOSE_RESYNC)
            return
        try:
            online = await welcome.enter(**self._presence_id())
            # Read after joining: a message is in the history, live, or both.
            history = await welcome.history_json(room.pk)
        except BaseException:
            live.leave(self.outbox)  # a crashed consumer gets no disconnect()
            self.outbox.gone()
            raise
        frame = protocol.welcome(
            room=room.slug, user=user.username, history_json=history, online_json=online
        )
        self.outbox.release(frame)
        self._heartbeat = heartbeat.Socket(
            room_id=room.pk,
            user_id=user.pk,
            username=user.username,
            conn_id=self.conn_id,
            outbox=self.outbox,
        )
        heartbeat.start(self._heartbeat)

    async def _refuse_over_cap(self) -> None:
        limit = connection_caps.cap(connection_caps.CHAT)
        message = f"you have {limit} chat connections open already; close some tabs"
        await self.send(
            text_data=protocol.encode(protocol.error(protocol.TOO_MANY_CONNECTIONS, message))
        )
        await self.close(protocol.CLOSE_TOO_MANY_CONNECTIONS)

    async def disconnect(self, code: int) -> None:
        if self._heartbeat is not None:  # first: a beat after this re-releases (heartbeat)
            heartbeat.stop(self._heartbeat)
            self._heartbeat = None
        if self.counted:
            await connection_caps.release(
                kind=connection_caps.CHAT, user_id=self.user.pk, conn_id=self.conn_id
            )
        for task in self._rechecks or ():
            task.cancel()
        if self.outbox is not None:
            live.leave(self.outbox)
            self.outbox.gone()
            await presence.leave(**self._presence_id())

    def _presence_id(self) -> dict[str, Any]:
        return {"room_id": self.room.pk, "username": self.user.username, "conn_id": self.conn_id}

    @property
    def closing(self) -> bool:
        return self.outbox is None or self.outbox.state is not OPEN

    async def _close(self, code: int) -> None:
        self.outbox.close(code)

    async def send_frame(self, frame: dict[str, Any]) -> None:
        await self.outbox.write(protocol.encode(frame))

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
        verdict = await chat_actions.spend(user_id=self.user.pk, kind=kind)
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
            await self._refuse(exc)
        except Exception:
            # A database error, a room deleted mid-send: this frame failed, the socket and
            # the client's other frames need not.
            logger.exception("chat frame %r from user %s failed", kind, self.user.pk)
            await self._refuse(protocol.unavailable(data))

    async def _refuse(self, exc: protocol.FrameError) -> None:
        await self.send_frame(
            protocol.error(exc.code, exc.message, client_msg_id=exc.client_msg_id, extra=exc.extra)
        )

    async def on_message(self, data: dict[str, Any]) -> None:
        message = protocol.message_in(data)
        stored, created = await chat_actions.post(self.room, self.user, message)
        if not created:
            await self.send_frame(protocol.ack_duplicate(stored))
        # A new message reaches this connection too, as the room's broadcast.

    async def on_edit(self, data: dict[str, Any]) -> None:
        # The room's `message_edited` is the confirmation, as a broadcast is for a message.
        await chat_actions.edit(self.room, self.user, protocol.edit_in(data))

    async def on_delete(self, data: dict[str, Any]) -> None:
        await chat_actions.delete(self.room, self.user, protocol.target_in(data))

    async def on_react(self, data: dict[str, Any]) -> None:
        # The room's `reaction` frame is the confirmation.
        await chat_actions.react(self.room, self.user, protocol.react_in(data))

    async def on_mute(self, data: dict[str, Any]) -> None:
        await self.send_frame(await chat_actions.mute(self.room, self.user, data))

    async def on_ban(self, data: dict[str, Any]) -> None:
        await self.send_frame(await chat_actions.ban(self.room, self.user, data))

    async def on_report(self, data: dict[str, Any]) -> None:
        await self.send_frame(await chat_actions.report(self.room, self.user, data))

    async def on_read(self, data: dict[str, Any]) -> None:
        # Confirmed by the `read` frame every socket of the user gets when the marker moved.
        await chat_actions.read(self.room, self.user, protocol.target_in(data))

    async def on_history(self, data: dict[str, Any]) -> None:
        frame = await chat_actions.history(self.room.pk, protocol.history_in(data))
        await self.send_frame(frame)

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
        "edit": on_edit,
        "delete": on_delete,
        "read": on_read,
        "react": on_react,
        "mute": on_mute,
        "ban": on_ban,
        "report": on_report,
    }

    # ------------------------------------------------------------ events from feeds.live

    def _control(self, message: dict[str, Any]) -> None:
        kind = message.get("type")
        if kind == live.CLOSE:
            session_key = message.get("session") or ""
            if not session_key or session_key == self.session_key:
                self.outbox.close(int(message["code"]))
        elif kind == live.RECHECK and not self.closing:
            task = asyncio.get_running_loop().create_task(self._recheck())
            if self._rechecks is None:
                self._rechecks = set()
            self._rechecks.add(task)
            task.add_done_callback(self._rechecks.discard)

    async def _recheck(self) -> None:
        if not await _can_stay(self.user.pk, self.room.pk):
            self.outbox.close(protocol.CLOSE_ACCESS_REVOKED)
