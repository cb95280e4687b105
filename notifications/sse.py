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
import functools
import logging
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from functools import partial
from typing import Any

from config import tcp
from notifications.hub import CLOSED, LIVE, MAX_BUFFERED_BYTES, Connection, frames
from realtime import fastpath

logger = logging.getLogger(__name__)

KERNEL_SEND_BUFFER = MAX_BUFFERED_BYTES // 2  # Linux doubles it
_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class _Handoff:
    __slots__ = ("connection", "finished", "status")

    def __init__(self) -> None:
        self.connection: Connection | None = None
        self.status = 0
        self.finished = False


_handoff: ContextVar[_Handoff | None] = ContextVar("sse_handoff", default=None)


def claim_stream(connection: Connection) -> bool:
    """Ask the ASGI layer to stream `connection` once the view's response is sent.

    False when the request did not come through SSEStreams (tests' WSGI client, another
    ASGI stack): the caller then streams through Django itself.
    """
    slot = _handoff.get()
    if slot is None:
        return False
    slot.connection = connection
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
        if slot.connection is not None and slot.finished:
            await serve(slot.connection, send, receive)


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


class _Transport:
    """An asyncio transport (uvicorn): what the server lets the app see of its socket."""

    __slots__ = ("flow", "transport")

    def __init__(self, transport: Any, flow: Any = None) -> None:
        self.transport = transport
        self.flow = flow

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def socket(self) -> Any:
        return self.transport.get_extra_info("socket")

    def cap_kernel_buffer(self) -> None:
        """Keep the kernel's send buffer of the socket near the bound too: by default it
        grows to megabytes for a client that stops reading, before the bound even sees
        a byte of it."""
        sock = self.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, KERNEL_SEND_BUFFER)

    async def writable(self) -> None:
        """Until uvicorn's flow control lets `send` write. Waited for here, before the next
        bytes leave the hub: inside `send` they would wait uncounted while the hub's own
        buffer filled up behind them."""
        if self.flow is not None and self.flow.write_paused:
            await self.flow.drain()

    def abort(self) -> None:
        """Reset the connection, as Twisted's abortConnection does. A plain close queues
        the FIN behind what the kernel still holds for a client that stopped reading: the
        client would not see the cut-off until it read it all, and the kernel would keep
        those bytes until the peer timed out."""
        sock = self.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()

    def flush(self) -> None:
        """asyncio transports write at once already."""


class _TwistedTransport(_Transport):
    """daphne: Twisted buffers each write until the reactor's next turn. In a fan-out that
    turn comes only after every connection's write was queued, so the first client waits
    for the last; writing at once halves the latency at no extra cost (profile in
    docs/performance.md). A failed write is left to the reactor, which still watches
    the socket and closes it as usual."""

    __slots__ = ()

    def buffered(self) -> int:
        tw = self.transport
        return len(tw.dataBuffer) - tw.offset + tw._tempDataLen

    def socket(self) -> Any:
        return getattr(self.transport, "socket", None)

    async def writable(self) -> None:
        """Twisted's `send` never waits."""

    def abort(self) -> None:
        self.transport.abortConnection()

    def flush(self) -> None:
        tw = self.transport
        if tw.connected and not tw.disconnecting and (tw._tempDataLen or tw.dataBuffer):
            tw.doWrite()


def server_transport(send: Send) -> _Transport | None:
    """The socket behind an ASGI `send`, for the servers whose `send` shows it: daphne's is
    partial(Server.handle_reply, protocol) over a Twisted TCP transport, uvicorn's a bound
    method of a cycle holding an asyncio transport and the flow control its `send` waits
    on. None for any other server."""
    if isinstance(send, functools.partial) and send.args:
        channel = getattr(send.args[0], "channel", None)
        tw = getattr(channel, "transport", None)
        if all(
            hasattr(tw, a) for a in ("_tempDataLen", "dataBuffer", "doWrite", "abortConnection")
        ):
            return _TwistedTransport(tw)
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if all(hasattr(transport, a) for a in ("get_write_buffer_size", "abort")):
        flow = getattr(cycle, "flow", None)
        if not all(hasattr(flow, a) for a in ("write_paused", "drain")):
            flow = None
        return _Transport(transport, flow)
    return None


async def serve(connection: Connection, send: Send, receive: Receive) -> None:
    """Write the hub's bytes for `connection` until it ends, the client leaves or lags."""
    transport = server_transport(send)
    fastpath.note_adapter("sse", transport, daphne=_TwistedTransport, uvicorn=_Transport)
    if transport is not None:
        transport.cap_kernel_buffer()
        # A peer gone without FIN or RST would hold the stream for ~15 minutes.
        tcp.time_out_vanished_peer(transport.socket())
        connection.on_abort = transport.abort
    watcher = asyncio.get_running_loop().create_task(_until_disconnect(receive, connection))
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
                await transport.writable()
                connection.server_buffered = transport.buffered()
        if not (connection.abort and transport is not None):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    finally:
        watcher.cancel()
        connection.on_abort = None


async def _drained(transport: _Transport, connection: Connection) -> None:
    """Until the server's buffer is down to half the bound (replay pacing), at most 60 s."""
    for _ in range(3000):
        if transport.buffered() <= MAX_BUFFERED_BYTES // 2 or connection.state is CLOSED:
            return
        await asyncio.sleep(0.02)
    connection.cut_off()


async def _until_disconnect(receive: Receive, connection: Connection) -> None:
    with contextlib.suppress(asyncio.CancelledError):
        while (await receive())["type"] != "http.disconnect":
            pass
        connection.gone()
