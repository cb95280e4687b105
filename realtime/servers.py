"""What an ASGI server lets Pulse see of one socket: the only module that reads their internals.

Neither daphne nor uvicorn bounds what it buffers for a client that does not read, and
daphne (Twisted) sends a write only on the reactor's next turn, which in a fan-out comes
after every member's write. So for the servers we run on, the chat outboxes
(realtime.outbox) and SSE streams (realtime.sse_asgi) look under the ASGI `send` for the
transport: how many bytes it holds, whether its flow control paused it, a way to push a
write out now and to drop a client for good. One adapter per server; `for_websocket` and
`for_http` find it, and None means an unknown server (then nothing is bounded or pushed,
and realtime.fastpath says so once). tests/test_canaries.py checks every private name used
here against the pinned versions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import signal
import socket
import struct
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from realtime import tcp

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

_RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends an RST


class ServerSocket:
    """An asyncio transport (uvicorn): asyncio writes at once and pauses above 64 KiB."""

    __slots__ = ("flow", "transport", "ws_protocol")

    server = "uvicorn"

    def __init__(self, transport: Any, *, ws_protocol: Any = None, flow: Any = None) -> None:
        self.transport = transport
        self.ws_protocol = ws_protocol  # uvicorn's WebSocket protocol: `writable` event
        self.flow = flow  # uvicorn's HTTP flow control: `write_paused`, `drain()`

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def paused(self) -> bool:
        """True while the server's `send` would wait for the client."""
        if self.ws_protocol is not None:
            return not self.ws_protocol.writable.is_set()
        return self.flow is not None and self.flow.write_paused

    def writable(self, limit: int) -> bool:
        """True when a `send` now neither waits nor leaves `limit` bytes or more buffered:
        one call per member and frame on the fan-out's hot path."""
        return self.buffered() < limit and not self.paused()

    async def wait_writable(self) -> None:
        """Until `send` writes without waiting. Waited for here, before the next bytes
        leave a hub: inside `send` they would wait uncounted."""
        if self.flow is not None and self.flow.write_paused:
            await self.flow.drain()

    def hold(self) -> None:
        """Frames written from now until flush() may go out together (daphne only)."""

    def flush(self) -> None:
        """Push what was just written to the socket (asyncio transports already do)."""

    def socket(self) -> Any:
        return self.transport.get_extra_info("socket")

    def abort(self) -> None:
        """Reset the connection, as Twisted's abortConnection does. A plain close queues
        the FIN behind what the kernel still holds for a client that stopped reading: the
        client would not see the cut-off until it read it all."""
        sock = self.socket()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()

    def prepare(self, kernel_send_buffer: int) -> None:
        """Cap the kernel's send buffer (left alone it grows to megabytes for a client that
        stops reading, out of sight of any bound) and fail a vanished peer (realtime.tcp)."""
        sock = self.socket()
        if sock is None:
            return
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, kernel_send_buffer)
        tcp.time_out_vanished_peer(sock)


class TwistedSocket(ServerSocket):
    """daphne: Twisted buffers without limit and writes on the reactor's next turn; here a
    write is pushed at once (a failed one is left to the reactor, which still watches the
    socket and closes it as usual). Under realtime.daphne_ws the WebSocket protocol also
    writes text frames itself and can hold a run of them for one send()."""

    __slots__ = ()

    server = "daphne"

    def __init__(self, transport: Any, *, ws_protocol: Any = None) -> None:
        super().__init__(
            transport, ws_protocol=ws_protocol if hasattr(ws_protocol, "hold") else None
        )

    def buffered(self) -> int:
        tw = self.transport
        return len(tw.dataBuffer) - tw.offset + tw._tempDataLen

    def paused(self) -> bool:
        return False  # Twisted's `send` never waits

    def writable(self, limit: int) -> bool:
        tw = self.transport
        return len(tw.dataBuffer) - tw.offset + tw._tempDataLen < limit

    async def wait_writable(self) -> None:
        """Twisted's `send` never waits."""

    def hold(self) -> None:
        if self.ws_protocol is not None:
            self.ws_protocol.hold()

    def flush(self) -> None:
        if self.ws_protocol is not None:
            self.ws_protocol.release()
        tw = self.transport
        if tw.connected and not tw.disconnecting and (tw._tempDataLen or tw.dataBuffer):
            tw.doWrite()

    def socket(self) -> Any:
        # Twisted drops `.socket` once the connection is lost (a client gone before accept).
        return self.transport.getHandle() if self.transport.connected else None

    def abort(self) -> None:
        self.transport.abortConnection()


_TWISTED = ("dataBuffer", "offset", "_tempDataLen", "doWrite", "abortConnection", "getHandle")


def _twisted(transport: Any) -> bool:
    return all(hasattr(transport, name) for name in _TWISTED)


def unwrap_send(send: Send) -> Send:
    """The server's own `send` under Channels' session wrapper, which only acts on HTTP
    responses: a room's frame then costs one call into the server, not two."""
    while (inner := getattr(getattr(send, "__self__", None), "real_send", None)) is not None:
        send = inner
    return send


def for_websocket(send: Send) -> ServerSocket | None:
    """The socket behind a WebSocket `send`: daphne's is partial(Server.handle_reply,
    protocol) over a Twisted transport, uvicorn's a bound method of its protocol."""
    if isinstance(send, functools.partial) and send.args:
        protocol = send.args[0]
        transport = getattr(protocol, "transport", None)
        return TwistedSocket(transport, ws_protocol=protocol) if _twisted(transport) else None
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    if hasattr(transport, "get_write_buffer_size") and isinstance(
        getattr(owner, "writable", None), asyncio.Event
    ):
        return ServerSocket(transport, ws_protocol=owner)
    return None


def for_http(send: Send) -> ServerSocket | None:
    """The socket behind an HTTP response's `send`: daphne's is partial(Server.handle_reply,
    request) whose channel holds the Twisted transport, uvicorn's a bound method of a cycle
    holding an asyncio transport and the flow control its `send` waits on."""
    if isinstance(send, functools.partial) and send.args:
        transport = getattr(getattr(send.args[0], "channel", None), "transport", None)
        return TwistedSocket(transport) if _twisted(transport) else None
    cycle = getattr(send, "__self__", None)
    transport = getattr(cycle, "transport", None)
    if all(hasattr(transport, name) for name in ("get_write_buffer_size", "abort")):
        flow = getattr(cycle, "flow", None)
        if not all(hasattr(flow, name) for name in ("write_paused", "drain")):
            flow = None
        return ServerSocket(transport, flow=flow)
    return None


# ---------------------------------------------------------------- the process (realtime.drain)


def on_first_sigterm(start_drain: Callable[[], None]) -> None:
    """Under daphne: once its reactor runs, the first SIGTERM calls `start_drain` in the
    reactor instead of stopping it; a second SIGTERM, or a SIGINT, then stops at once.
    Twisted installs its own handlers while starting, so these go in after them."""
    from twisted.internet import reactor

    def stop_now(signum: int, frame: Any) -> None:
        reactor.callFromThread(stop_reactor, reactor)

    def first(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, stop_now)
        signal.signal(signal.SIGINT, stop_now)
        reactor.callFromThread(start_drain)

    reactor.callWhenRunning(signal.signal, signal.SIGTERM, first)


class DaphneProcess:
    """The running daphne process as realtime.drain needs it, through its Twisted reactor:
    the listening ports, and the connections by what speaks on them (HTTP or WebSocket)."""

    def __init__(self) -> None:
        from autobahn.twisted.websocket import WebSocketServerProtocol
        from daphne.http_protocol import HTTPFactory
        from twisted.internet import reactor
        from twisted.web.http import HTTPChannel

        self.reactor: Any = reactor
        self._http_factory = HTTPFactory
        self._http = HTTPChannel
        self._websocket = WebSocketServerProtocol
        self._servers: set[Any] = set()  # daphne's Server of each port (stop_accepting)

    def _readers(self) -> list[Any]:
        return list(self.reactor.getReaders())

    def stop_accepting(self) -> int:
        """Close daphne's listening sockets: a new connection is refused at once (a proxy
        tries the next upstream). Returns how many were closed."""
        ports = [
            reader
            for reader in self._readers()
            if isinstance(getattr(reader, "factory", None), self._http_factory)
            and hasattr(reader, "stopListening")
        ]
        for port in ports:
            self._servers.add(port.factory.server)
            port.stopListening()
        return len(ports)

    def applications(self) -> int:
        """Application instances daphne still runs (a consumer's disconnect handler, say):
        stopping now would cancel them."""
        return sum(len(server.connections) for server in self._servers)

    def end_keep_alive(self) -> None:
        """HTTP connections close after their current response; idle ones close now. A
        client's next request then opens a new connection, to another process."""
        for reader in self._readers():
            channel = self._http_channel(reader)
            if channel is not None:
                channel.persistent = False
                if not channel.requests:
                    channel.loseConnection()

    def close_websockets(self, code: int) -> int:
        """Close every open WebSocket with `code` (consumers Pulse does not write to
        itself); autobahn refuses an application's 1012, so the frame is sent here."""
        closed = 0
        for reader in self._readers():
            protocol = getattr(reader, "protocol", None)
            if isinstance(protocol, self._websocket) and protocol.state == protocol.STATE_OPEN:
                protocol.sendCloseFrame(code=code, isReply=False)
                closed += 1
        return closed

    def connections(self) -> int:
        """Client connections still open (HTTP and WebSocket)."""
        return sum(
            self._http_channel(r) is not None
            or isinstance(getattr(r, "protocol", None), self._websocket)
            for r in self._readers()
        )

    def _http_channel(self, reader: Any) -> Any:
        """The HTTP channel of a connection, under the wrapper Twisted's HTTPFactory puts
        around it (which can switch to HTTP/2) in `_channel`."""
        protocol = getattr(reader, "protocol", None)
        channel = getattr(protocol, "_channel", protocol)
        return channel if isinstance(channel, self._http) else None

    def stop(self) -> None:
        """Stop the reactor: daphne cancels what still runs and the process exits 0."""
        stop_reactor(self.reactor)


def stop_reactor(reactor: Any) -> None:
    from twisted.internet.error import ReactorNotRunning

    with contextlib.suppress(ReactorNotRunning):  # stopping already
        reactor.stop()
