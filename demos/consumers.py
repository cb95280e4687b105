"""The shared board's WebSocket (`/ws/demos/board/<slug>/`): one tab of one user.

A plain Channels consumer: it joins the board's group on the channel layer, and the
operations every process publishes there (demos.events) reach it as `board.op`
messages. Thin like a view: check access, validate frames (demos.protocol), call a
service or selector off the event loop, relay the result.

Each socket is sent every version once, in order: `sent` is the last version it was
sent. Messages from several processes can arrive out of order, and a full channel drops
some (channels-redis discards over its capacity and after its expiry); an operation
past `sent + 1` means the ones before it are committed already (versions commit in
order), so they are read from the log and sent first.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.core.exceptions import ValidationError
from limits import RateLimitItemPerSecond

from demos import access, events, protocol, selectors, services
from realtime import ratelimit
from realtime.consumers import UserGroupMixin

logger = logging.getLogger(__name__)

# Frames per user, across tabs and processes: quick dragging is a few a second.
FRAMES = RateLimitItemPerSecond(20, 2)
# Refused frames in a row before the socket is closed: a client that ignores `error`.
FLOOD_STRIKES = 20


@database_sync_to_async
def _board_id(user: Any, slug: str) -> int | None:
    board = selectors.board_by_slug(slug=slug)
    return board.pk if access.can_use_board(user=user, board=board) else None


@database_sync_to_async
def _catch_up(board_id: int, since: int | None) -> dict[str, Any]:
    return selectors.board_catch_up(board_id=board_id, since=since)


def _service(func: Callable[..., dict[str, Any]]) -> Callable[..., Awaitable[dict[str, Any]]]:
    """`func` off the event loop, its ValidationError turned into an `error` frame."""

    @database_sync_to_async
    def call(client_op_id: str, **kwargs: Any) -> dict[str, Any]:
        try:
            return func(client_op_id=client_op_id, **kwargs)
        except ValidationError as exc:
            code = exc.code or protocol.INVALID
            message = " ".join(exc.messages)
            raise protocol.FrameError(code, message, client_op_id=client_op_id) from None

    return call


_create = _service(services.card_create)
_edit = _service(services.card_edit)
_move = _service(services.card_move)


class BoardConsumer(UserGroupMixin, AsyncJsonWebsocketConsumer):
    board_id = 0
    group = ""
    user: Any = None
    sent: int | None = None  # the last version sent; None until the client's `sync`
    strikes = 0  # frames refused by the rate limit in a row
    closing = False

    # ------------------------------------------------------------ lifecycle

    async def connect(self) -> None:
        user = self.scope.get("user")
        board_id = await _board_id(user, self.scope["url_route"]["kwargs"]["slug"])
        if board_id is None:
            await self.close()  # before accept(): daphne answers the handshake with 403
            return
        self.user, self.board_id = user, board_id
        self.group = events.board_group(board_id)
        # Joined before any read, so an operation is in the catch-up, live, or both.
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.join_user_group(user)  # a sign-out closes the socket
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)
            await self.leave_user_group(self.user)

    # ------------------------------------------------------------ client frames

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if self.closing:
            return  # frames queued behind a close
        allowed = await ratelimit.hit(FRAMES, "board-frames", self.user.pk)
        self.strikes = 0 if allowed else self.strikes + 1
        if self.strikes >= FLOOD_STRIKES:
            self.closing = True
            await self.close(protocol.CLOSE_RATE_LIMITED)
            return
        data: dict[str, Any] = {}
        try:
            data = protocol.parse(text_data)
            if not allowed:
                raise protocol.rate_limited(data)
            await self.receive_json(data)
        except protocol.FrameError as exc:
            await self.send_json(protocol.error(exc))
        except Exception:
            # A database error, say: this frame failed; the socket and later frames need not.
            logger.exception("board frame from user %s failed", self.user.pk)
            await self.send_json(protocol.error(protocol.unavailable(data)))

    async def receive_json(self, content: dict[str, Any], **kwargs: Any) -> None:
        await self._handlers[protocol.frame_type(content)](self, content)

    async def on_sync(self, data: dict[str, Any]) -> None:
        since = protocol.sync_in(data)
        # A long-lived socket renews its membership: channels-redis forgets group members
        # after its group expiry (a day by default).
        await self.channel_layer.group_add(self.group, self.channel_name)
        if since is not None and self.sent is not None:
            since = max(since, self.sent)  # what this socket sent is on its way already
        await self._send_catch_up(since)

    async def on_create(self, data: dict[str, Any]) -> None:
        request = protocol.create_in(data)
        op = await _create(
            request.client_op_id,
            board_id=self.board_id,
            author=self.user,
            column=request.column,
            text=request.text,
            index=request.index,
        )
        await self._deliver(op)  # at once, whatever the layer does with the group's copy

    async def on_edit(self, data: dict[str, Any]) -> None:
        request = protocol.edit_in(data)
        op = await _edit(
            request.client_op_id,
            board_id=self.board_id,
            author=self.user,
            card_id=request.card,
            text=request.text,
        )
        await self._deliver(op)

    async def on_move(self, data: dict[str, Any]) -> None:
        request = protocol.move_in(data)
        op = await _move(
            request.client_op_id,
            board_id=self.board_id,
            author=self.user,
            card_id=request.card,
            column=request.column,
            index=request.index,
        )
        await self._deliver(op)

    _handlers: dict[str, Callable[[BoardConsumer, dict[str, Any]], Awaitable[None]]] = {
        "sync": on_sync,
        "create": on_create,
        "edit": on_edit,
        "move": on_move,
    }

    # ------------------------------------------------------------ the user's group

    async def signed_out(self) -> None:
        self.closing = True  # frames already queued are not answered
        await super().signed_out()

    # ------------------------------------------------------------ operations to the client

    async def board_op(self, event: dict[str, Any]) -> None:
        try:
            await self._deliver(event["op"])
        except Exception:
            # The next operation, or the client's next `sync`, fills the gap.
            logger.exception("board %s: delivering version %s failed", self.board_id, self.sent)

    async def _deliver(self, op: dict[str, Any]) -> None:
        if self.sent is None or op["version"] <= self.sent:
            return  # before the first `sync` (which reads it), or sent already
        if op["version"] == self.sent + 1:
            await self.send_json(protocol.ops([op]))
            self.sent = op["version"]
        else:
            await self._send_catch_up(self.sent)

    async def _send_catch_up(self, since: int | None) -> None:
        frame = await _catch_up(self.board_id, since)
        await self.send_json(frame)
        if frame["type"] == "snapshot":
            self.sent = frame["version"]
        elif frame["ops"]:
            self.sent = frame["ops"][-1]["version"]
        else:
            self.sent = since

    @classmethod
    async def encode_json(cls, content: dict[str, Any]) -> str:
        return protocol.encode(content)
