"""Serve authorized SSE streams straight on the ASGI connection, after Django lets go.

`GET /events/` is a normal Django view: middleware, session auth, channel access checks
and the `Last-Event-ID` parsing all run as for any request. When the view accepts a
stream it hands the connection to this layer (`claim_stream`) and returns a response
holding only the first bytes. Django sends the headers and those bytes, finishes the
request (its request object, session, user and database connection are released), and
`SSEStreams` keeps the ASGI connection open and writes the hub's bytes to it directly.

That saves the per-event layers of Django's streaming response and, above all, the
memory of a live Django request per idle connection. It also lets the hub see the
server's own write buffer (daphne/Twisted and uvicorn expose it through their `send`),
so a client that stops reading is cut off once over the bound instead of growing the
server's buffer without limit. Without this wrapper (another ASGI stack) the view falls
back to a plain streaming response over the same hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from functools import partial
from typing import Any

from realtime import fastpath, servers
from realtime.sse import CLOSED, LIVE, MAX_BUFFERED_BYTES, Connection, frames

logger = logging.getLogger(__name__)

KERNEL_SEND_BUFFER = MAX_BUFFERED_BYTES // 2  # Linux doubles it
# Above this many bytes held by the server for a client, new bytes wait in the stream.
HIGH_WATER_BYTES = MAX_BUFFERED_BYTES // 4

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


# What takes over a claimed connection: writes its body to `send` until it is done.
Respond = Callable[[Connection, Send, Receive], Awaitable[None]]


class _Handoff:
    __slots__ = ("connection", "finished", "respond", "status")

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.respond: Respond | None = None
        self.status = 0
        self.finished = False


_handoff: ContextVar[_Handoff | None] = ContextVar("sse_handoff", default=None)


def claim_stream(connection: Connection, respond: Respond | None = None) -> bool:
    """Ask the ASGI layer to stream `connection` once the view's response is sent.

    `respond` writes the rest of the body (default: the SSE stream, `serve`; a long poll
    passes its own, realtime.longpoll). False when the request did not come through
    SSEStreams (tests' WSGI client, another ASGI stack): the caller then answers through
    Django itself.
    """
    slot = _handoff.get()
    if slot is None:
        return False
    slot.connection = connection
    slot.respond = respond or serve
    return True


class SSEStreams:
    """ASGI middleware around the HTTP app: takes over streams a view claimed."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        slot = _Handoff()
        token = _handoff.set(slot)
        try:
            await self.app(scope, receive, _until_handoff(slot, send))
        finally:
            _handoff.reset(token)
        if slot.connection is not None and slot.respond is not None and slot.finished:
            await slot.respond(slot.connection, send, receive)


def _until_handoff(slot: _Handoff, send: Send) -> Send:
    async def send_but_keep_open(message: Message) -> None:
        kind = message["type"]
        if kind == "http.response.start":
            slot.status = message["status"]
        elif (
            kind == "http.response.body"
            and not message.get("more_body", False)
            and slot.connection is not None
            and slot.status == 200
        ):
            # Django is done with the request; the stream goes on (see serve()).
            slot.finished = True
            return
        await send(message)

    return send_but_keep_open


async def serve(connection: Connection, send: Send, receive: Receive) -> None:
    """Write the hub's bytes for `connection` until it ends, the client leaves or lags."""
    transport = servers.for_http(send)
    fastpath.note_adapter(
        "sse", transport, daphne=servers.TwistedSocket, uvicorn=servers.ServerSocket
    )
    if transport is not None:
        # Caps the kernel's buffer; a peer gone without FIN or RST would otherwise hold the
        # stream for ~15 minutes (realtime.tcp).
        transport.prepare(KERNEL_SEND_BUFFER)
        connection.on_abort = transport.abort
    watcher = asyncio.get_running_loop().create_task(until_disconnect(receive, connection))
    drained = None if transport is None else partial(_drained, transport, connection)
    try:
        async for chunk in frames(connection, drained=drained):
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if transport is not None:
                transport.flush()
                connection.server_buffered = transport.buffered()
                if connection.state is LIVE and connection.behind() > MAX_BUFFERED_BYTES:
                    connection.cut_off()
                    continue
                await transport.wait_writable()
                await _below_high_water(transport, connection)
                connection.server_buffered = transport.buffered()
        if not (connection.abort and transport is not None):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
        connection.on_abort = None


async def _below_high_water(transport: servers.ServerSocket, connection: Connection) -> None:
    """Until the server holds less than HIGH_WATER_BYTES for the client. Meanwhile new events
    wait in the stream's own buffer, where a latest value replaces the unsent older one
    (realtime.latest) and the bound still counts them (realtime.sse)."""
    # Polled: Twisted has no event for a drained buffer (uvicorn's is awaited before this).
    while transport.buffered() >= HIGH_WATER_BYTES and connection.state is not CLOSED:  # noqa: ASYNC110
        await asyncio.sleep(0.02)


async def _drained(transport: servers.ServerSocket, connection: Connection) -> None:
    """Until the server's buffer is down to half the bound (replay pacing), at most 60 s."""
    for _ in range(3000):
        if transport.buffered() <= MAX_BUFFERED_BYTES // 2 or connection.state is CLOSED:
            return
        await asyncio.sleep(0.02)
    connection.cut_off()


async def until_disconnect(receive: Receive, connection: Connection) -> None:
    """Mark `connection` gone when the client disconnects (run it as a task)."""
    with contextlib.suppress(asyncio.CancelledError):
        while (await receive())["type"] != "http.disconnect":
            pass
        connection.gone()
