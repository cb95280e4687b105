"""Canaries for the server internals the fast paths rely on.

The fast paths reach into private parts of daphne, autobahn, Twisted, uvicorn, Channels,
asgiref and Django, and fall back without an error when they do not find them: a fan-out
~10x slower, or no bound on a slow client's buffer, that nothing reports but the counters
of `GET /api/health/` (realtime.fastpath). These tests fail first instead, naming the
file that relies on the name and what breaks. They run on the installed versions, which
must be the pinned ones: upgrade a pin, then read the failures here.

Where it is cheap, the real objects are built and fed real bytes (no server process), so
that the adapters' own detection is what is tested.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
from collections import Counter
from collections.abc import Callable, Iterator
from importlib import metadata
from types import SimpleNamespace
from typing import Any

import pytest

from realtime import fastpath
from realtime.servers import ServerSocket, TwistedSocket, for_http, for_websocket, unwrap_send
from tests.support.requirements import pins
from tests.support.servers import ROOT

OUTBOX = "realtime/servers.py for_websocket (chat fan-out, realtime/outbox.py)"
SSE = "realtime/servers.py for_http (SSE streams, realtime/sse_asgi.py)"
DAPHNE_WS = "realtime/daphne_ws.py (prepared text frames)"
DRAIN = "realtime/servers.py DaphneProcess (restarts without downtime, realtime/drain.py)"

# Distributions whose internals the fast paths use, as requirements.in names them.
RELIED_ON = (
    "daphne", "Twisted", "autobahn", "txaio", "uvicorn", "websockets",
    "channels", "asgiref", "Django", "django-eventstream",
)  # fmt: skip

HANDSHAKE = (
    b"GET /ws/ HTTP/1.1\r\nHost: testserver\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
)
GET = b"GET /events/ HTTP/1.1\r\nHost: testserver\r\n\r\n"


def missing(obj: object, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if not hasattr(obj, name)]


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    """A connected (server side, client side) pair of TCP sockets on loopback."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        accepted, _ = listener.accept()
    return accepted, client


@pytest.fixture
def sockets() -> Iterator[Callable[[], tuple[socket.socket, socket.socket]]]:
    opened: list[socket.socket] = []

    def pair() -> tuple[socket.socket, socket.socket]:
        accepted, client = tcp_pair()
        opened.extend((accepted, client))
        return accepted, client

    yield pair
    for sock in opened:
        sock.close()


@pytest.fixture(autouse=True)
def fresh_counters(monkeypatch) -> None:
    monkeypatch.setattr(fastpath, "_counts", Counter())


# ---------------------------------------------------------------- the pinned versions


@pytest.mark.parametrize("distribution", RELIED_ON)
def test_the_installed_version_is_the_pinned_one(distribution: str) -> None:
    pinned = pins(ROOT / "requirements.txt").get(distribution.lower())
    assert pinned, f"pin {distribution} in requirements.txt: the fast paths use its internals"
    installed = metadata.version(distribution)
    assert installed == pinned, (
        f"{distribution} {installed} is installed, requirements.txt pins {pinned}: these "
        "canaries vouch for the pinned version only (bin/setup-venv reinstalls)"
    )


# ---------------------------------------------------------------- Twisted


def twisted_connection(sock: socket.socket, protocol: Any = None) -> Any:
    """A Twisted TCP server connection on `sock`, as a listening port makes one."""
    from twisted.internet import tcp
    from twisted.internet.testing import MemoryReactor

    return tcp.Server(sock, protocol, ("127.0.0.1", 1), None, 0, MemoryReactor())


def test_twisted_connections_have_the_names_the_adapters_read(sockets) -> None:
    from twisted.internet import tcp

    used = (
        "dataBuffer", "offset", "_tempDataLen", "doWrite", "abortConnection", "socket",
        "getHandle", "connected", "disconnecting", "write",
    )  # fmt: skip
    accepted, _ = sockets()
    connection = twisted_connection(accepted)
    assert isinstance(connection, tcp.Connection)
    assert not missing(connection, used), (
        f"twisted.internet.tcp.Connection lacks {missing(connection, used)}: {OUTBOX} and "
        f"{SSE} no longer recognise daphne's transport (no buffer bound, no early write), "
        f"and {DAPHNE_WS} cannot write frames itself"
    )


def test_the_twisted_buffer_is_what_the_adapters_count_and_flush(sockets) -> None:
    accepted, client = sockets()
    connection = twisted_connection(accepted)
    connection.write(b"queued")  # Twisted keeps it until the reactor's next turn
    for adapter in (TwistedSocket(connection),):
        assert adapter.buffered() == len(b"queued"), (
            f"{type(adapter).__name__} ({OUTBOX}, {SSE}) reads Twisted's buffer as "
            "len(dataBuffer) - offset + _tempDataLen: it no longer sees what is queued, so "
            "slow clients are never cut off"
        )
    TwistedSocket(connection).flush()
    assert connection._tempDataLen == 0 and connection.dataBuffer == b"", (
        f"TwistedSocket.flush ({OUTBOX}) calls doWrite() to send at once: Twisted kept the bytes"
    )
    client.settimeout(5)
    assert client.recv(100) == b"queued"
    assert TwistedSocket(connection).socket() is accepted


# ---------------------------------------------------------------- daphne and autobahn


def test_daphne_builds_the_websocket_factory_named_in_its_server_module() -> None:
    from daphne import server

    assert hasattr(server, "WebSocketFactory"), (
        "daphne.server has no WebSocketFactory: realtime/daphne_ws.py install() has nothing to "
        "replace, and every daphne falls back to stock frames (~10x slower fan-out)"
    )
    assert "WebSocketFactory" in server.Server.run.__code__.co_names, (
        "daphne's Server.run() no longer looks WebSocketFactory up in daphne.server when it "
        "starts: realtime/daphne_ws.py install() (called by config/asgi.py and "
        "config/daphne_server.py) no longer takes effect"
    )
    assert callable(getattr(server.Server, "handle_reply", None)), (
        f"daphne's Server.handle_reply is gone: {OUTBOX} and {SSE} recognise daphne's `send` "
        "as partial(Server.handle_reply, protocol)"
    )


def test_autobahn_takes_failbydrop_and_prepares_whole_frames() -> None:
    from autobahn.twisted.websocket import WebSocketServerFactory
    from twisted.internet.testing import MemoryReactorClock

    from realtime.daphne_ws import ClosingWebSocketFactory

    factory = ClosingWebSocketFactory(object(), reactor=MemoryReactorClock())
    params = inspect.signature(WebSocketServerFactory.setProtocolOptions).parameters
    assert "failByDrop" in params, (
        f"autobahn's setProtocolOptions has no failByDrop: {DAPHNE_WS} cannot make oversized "
        "messages close with 1009 instead of a dropped connection"
    )
    factory.setProtocolOptions()
    assert factory.failByDrop is False
    prepared = factory.prepareMessage("héllo".encode())
    assert prepared.payloadHybi == b"\x81\x06h\xc3\xa9llo", (
        f"autobahn's prepareMessage().payloadHybi is not one unmasked final text frame: "
        f"{DAPHNE_WS} would send broken frames to every room member"
    )


def test_autobahn_protocols_have_the_state_the_short_send_path_checks(sockets) -> None:
    from twisted.internet.testing import MemoryReactorClock

    from realtime.daphne_ws import ClosingWebSocketFactory, FanoutWebSocketProtocol

    used = (
        "state", "STATE_OPEN", "_perMessageCompress", "send_queue", "logFrames", "logOctets",
        "trackedTimings", "maxMessagePayloadSize", "autoFragmentSize", "sendData",
        "sendMessage", "serverSend", "factory", "transport",
    )  # fmt: skip
    factory = ClosingWebSocketFactory(object(), reactor=MemoryReactorClock())
    factory.setProtocolOptions()
    protocol = factory.buildProtocol(("127.0.0.1", 1))
    assert isinstance(protocol, FanoutWebSocketProtocol)
    accepted, _ = sockets()
    protocol.makeConnection(twisted_connection(accepted, protocol))
    assert not missing(protocol, used), (
        f"autobahn/daphne's WebSocketProtocol lacks {missing(protocol, used)}: "
        f"{DAPHNE_WS} _plain_send() and serverSend() read them on every text frame"
    )
    assert protocol.send_queue == type(protocol.send_queue)() and not protocol.logFrames
    assert protocol._perMessageCompress is None and protocol.trackedTimings is None


class DaphneInProcess:
    """daphne's Server, HTTP factory and our WebSocket factory, fed real bytes on real TCP
    sockets without a reactor running: the app receives the `send` daphne really makes."""

    def __init__(self, pair: Callable[[], tuple[socket.socket, socket.socket]]) -> None:
        from daphne.server import Server

        from realtime.daphne_ws import ClosingWebSocketFactory

        self.pair = pair
        self.sends: dict[str, Any] = {}
        self.server = Server(application=self.app, endpoints=["tcp:port=0"])
        self.server.connections = {}  # what Server.run() sets up
        self.server.ws_factory = ClosingWebSocketFactory(self.server, server="Daphne")
        self.server.ws_factory.setProtocolOptions(allowNullOrigin=True)
        self.done = asyncio.Event()

    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        self.sends[scope["type"]] = send
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.send", "text": "héllo"})
        self.done.set()

    async def request(self, raw: bytes) -> tuple[Any, socket.socket, Any]:
        """Send `raw` on a new connection; (its app's send, the client, the transport)."""
        from daphne.http_protocol import HTTPFactory

        accepted, client = self.pair()
        channel = HTTPFactory(self.server).buildProtocol(("127.0.0.1", 1))
        connection = twisted_connection(accepted, channel)
        channel.makeConnection(connection)
        self.done.clear()
        channel.dataReceived(raw)
        await asyncio.wait_for(self.done.wait(), 5)
        kind = "websocket" if b"Upgrade" in raw else "http"
        return self.sends[kind], client, connection


async def test_daphne_http_send_is_recognised_by_the_sse_adapter(sockets) -> None:
    send, _, connection = await DaphneInProcess(sockets).request(GET)
    transport = for_http(send)
    assert type(transport) is TwistedSocket, (
        f"{SSE} does not recognise daphne's HTTP send ({send!r}): it "
        "expects partial(Server.handle_reply, request) with request.channel.transport a "
        "Twisted connection. SSE streams lose their buffer bound and early writes (sse-none)"
    )
    assert transport.transport is connection


async def test_daphne_websocket_send_is_recognised_and_writes_prepared_frames(sockets) -> None:
    send, client, connection = await DaphneInProcess(sockets).request(HANDSHAKE)
    wire = for_websocket(unwrap_send(send))
    assert type(wire) is TwistedSocket and wire.ws_protocol is not None, (
        f"{OUTBOX} does not recognise daphne's WebSocket send ({send!r}) or "
        "our protocol behind it: chat fan-out falls back to a task per member (ws-none)"
    )
    assert wire.transport is connection
    wire.flush()
    client.settimeout(5)
    received = b""
    while not received.endswith(b"\x81\x06h\xc3\xa9llo"):
        chunk = client.recv(4096)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 101 ")
    assert fastpath.counts().get("ws-daphne-prepared-frames") == 1, (
        f"{DAPHNE_WS} left an open socket's text frame to daphne's own path: {fastpath.counts()}"
    )


async def test_daphne_websocket_closes_with_1012_which_autobahn_refuses_an_app(sockets) -> None:
    send, client, _ = await DaphneInProcess(sockets).request(HANDSHAKE)
    await send({"type": "websocket.close", "code": 1012})
    wire = for_websocket(unwrap_send(send))
    assert wire is not None
    wire.flush()
    client.settimeout(5)
    received = b""
    while b"\x88\x02" not in received:
        chunk = client.recv(4096)
        assert chunk, received
        received += chunk
    assert received.endswith(b"\x88\x02\x03\xf4"), (
        f"{DAPHNE_WS} serverClose() did not send close code 1012 with autobahn's "
        f"sendCloseFrame: {received[-8:]!r}. Draining processes (realtime/drain.py) then "
        "cannot tell chat tabs to move to another process"
    )
    protocol = wire.ws_protocol
    assert protocol.state != protocol.STATE_OPEN


def test_daphnes_http_channels_have_what_the_drain_reads(sockets) -> None:
    from autobahn.twisted.websocket import WebSocketServerProtocol
    from daphne.http_protocol import HTTPFactory
    from daphne.server import Server
    from daphne.ws_protocol import WebSocketProtocol
    from twisted.web.http import HTTPChannel

    factory = HTTPFactory(Server(application=None, endpoints=["tcp:port=0"]))
    wrapper = factory.buildProtocol(("127.0.0.1", 1))
    accepted, _ = sockets()
    wrapper.makeConnection(twisted_connection(accepted, wrapper))
    channel = getattr(wrapper, "_channel", None)
    assert isinstance(channel, HTTPChannel), (
        f"{DRAIN} finds daphne's HTTP connections as an HTTPChannel in the `_channel` of what "
        f"Twisted's HTTPFactory builds ({type(wrapper).__name__})"
    )
    assert channel.persistent and channel.requests == [], (
        f"Twisted's HTTPChannel lacks `persistent` or `requests`: {DRAIN} ends keep-alive "
        "with them, so a draining process would keep serving a client's next requests"
    )
    assert issubclass(WebSocketProtocol, WebSocketServerProtocol), (
        f"daphne's WebSocket protocol is no autobahn WebSocketServerProtocol: {DRAIN} closes "
        "ordinary consumers' sockets by that type"
    )
    assert "connections" in Server.run.__code__.co_names, (
        f"daphne's Server.run() no longer sets up `connections`: {DRAIN} counts the "
        "application instances still running in it before the process stops"
    )
    assert factory.server is not None, f"{DRAIN} finds daphne's Server as its factory's `server`"
    assert callable(WebSocketServerProtocol.sendCloseFrame), (
        f"autobahn's sendCloseFrame is gone: {DRAIN} and {DAPHNE_WS} send 1012 with it"
    )


# ---------------------------------------------------------------- uvicorn


class UvicornInProcess:
    """uvicorn's HTTP protocol (and the websockets-sansio one it upgrades to) on a real
    socket of this event loop: the app receives the `send` uvicorn really makes."""

    def __init__(self, pair: Callable[[], tuple[socket.socket, socket.socket]], http: str):
        from uvicorn.config import Config

        self.pair = pair
        # log_config=None: uvicorn would otherwise reconfigure this process's logging.
        self.config = Config(
            app=self.app, interface="asgi3", http=http, ws="websockets-sansio", lifespan="off",
            log_config=None, access_log=False,
        )  # fmt: skip
        self.config.load()
        self.sends: dict[str, Any] = {}
        self.transports: list[asyncio.Transport] = []
        self.got = asyncio.Event()
        self.release = asyncio.Event()

    async def app(self, scope: dict, receive: Any, send: Any) -> None:
        self.sends[scope["type"]] = send
        self.got.set()
        await self.release.wait()

    async def request(self, raw: bytes) -> tuple[Any, asyncio.Transport]:
        from uvicorn.server import ServerState

        accepted, client = self.pair()
        protocol = self.config.http_protocol_class(
            config=self.config, server_state=ServerState(), app_state={}
        )
        transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
            lambda: protocol, accepted
        )
        self.transports.append(transport)
        self.got.clear()
        client.sendall(raw)
        await asyncio.wait_for(self.got.wait(), 5)
        return self.sends["websocket" if b"Upgrade" in raw else "http"], transport


@pytest.fixture
async def uvicorn_in_process(request, sockets):
    server = UvicornInProcess(sockets, request.param)
    yield server
    server.release.set()
    for transport in server.transports:
        transport.abort()
    await asyncio.sleep(0)


@pytest.mark.parametrize("uvicorn_in_process", ["httptools", "h11"], indirect=True)
async def test_uvicorn_http_send_is_recognised_by_the_sse_adapter(uvicorn_in_process) -> None:
    send, transport = await uvicorn_in_process.request(GET)
    adapter = for_http(send)
    assert type(adapter) is ServerSocket and adapter.transport is transport, (
        f"{SSE} does not recognise uvicorn's HTTP send ({send!r}): it "
        "expects a bound method of a cycle with `transport`. SSE streams lose their buffer "
        "bound (sse-none)"
    )
    flow = adapter.flow
    assert flow is not None and isinstance(flow.write_paused, bool), (
        f"uvicorn's cycle has no `flow` with write_paused/drain: {SSE} cannot wait for "
        "uvicorn's flow control, and its buffer grows behind the hub's count"
    )
    assert inspect.iscoroutinefunction(flow.drain)
    transport.get_protocol().pause_writing()  # what asyncio calls above the high-water mark
    assert flow.write_paused
    transport.get_protocol().resume_writing()
    assert not flow.write_paused


@pytest.mark.parametrize("uvicorn_in_process", ["httptools"], indirect=True)
async def test_uvicorn_sansio_websocket_send_is_recognised_by_the_outbox(uvicorn_in_process):
    send, transport = await uvicorn_in_process.request(HANDSHAKE)
    wire = for_websocket(unwrap_send(send))
    assert type(wire) is ServerSocket and wire.ws_protocol is not None, (
        f"{OUTBOX} does not recognise uvicorn's websockets-sansio send "
        f"({send!r}): it expects a bound method of a protocol with `transport` and an "
        "asyncio.Event `writable`. Chat fan-out falls back to a task per member (ws-none)"
    )
    protocol = wire.ws_protocol
    assert wire.transport is transport and isinstance(protocol.writable, asyncio.Event)
    assert wire.buffered() == 0 and not wire.paused()
    protocol.pause_writing()
    assert wire.paused(), (
        "uvicorn's websockets-sansio protocol no longer clears `writable` when asyncio "
        f"pauses writing: {OUTBOX} writes into a full buffer"
    )
    protocol.resume_writing()
    assert not wire.paused()


# ---------------------------------------------------------------- Channels


def test_channels_session_wrapper_keeps_the_servers_send_as_real_send() -> None:
    from channels.sessions import InstanceSessionWrapper

    async def server_send(message: dict) -> None: ...

    wrapper = InstanceSessionWrapper({"type": "websocket", "cookies": {}}, server_send)
    assert unwrap_send(wrapper.send) is server_send, (
        f"channels' InstanceSessionWrapper no longer keeps the server's send as real_send: "
        f"{OUTBOX} unwrap_send() cannot reach daphne's or uvicorn's send under Channels' "
        "session middleware, and the adapters are not found (ws-none)"
    )


# ---------------------------------------------------------------- Django and asgiref


def test_django_handler_internals_of_the_one_hop_connect_path() -> None:
    from django.core.handlers import asgi
    from django.core.handlers.base import BaseHandler
    from django.http import StreamingHttpResponse

    user = "realtime/onehop.py (SSE connects in one thread hop)"
    assert inspect.iscoroutinefunction(asgi.ASGIHandler.read_body), user
    assert list(inspect.signature(asgi.ASGIHandler.read_body).parameters) == ["self", "receive"]
    assert list(inspect.signature(asgi.ASGIHandler.create_request).parameters) == [
        "self", "scope", "body_file",
    ], f"{user}: ASGIHandler.create_request(scope, body_file) changed; /events/ breaks"  # fmt: skip
    assert "is_async" in inspect.signature(BaseHandler.load_middleware).parameters, (
        f"{user}: BaseHandler.load_middleware(is_async=False) changed: it builds the sync chain"
    )
    assert callable(BaseHandler.get_response) and callable(asgi.get_script_prefix), user
    assert hasattr(StreamingHttpResponse(iter(())), "is_async"), user


def test_django_get_user_needs_only_a_session() -> None:
    from importlib import import_module

    from django.conf import settings
    from django.contrib.auth import get_user
    from django.contrib.auth.models import AnonymousUser
    from django.http.cookie import parse_cookie

    user = "realtime/auth.py (WebSocket session auth in one hop)"
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key=None)
    assert isinstance(get_user(SimpleNamespace(session=session)), AnonymousUser), (
        f"{user} calls django.contrib.auth.get_user with an object holding only `session`"
    )
    assert parse_cookie("sessionid=abc; other=1") == {"sessionid": "abc", "other": "1"}, user


async def test_asgiref_runs_thread_handler_on_the_kept_database_thread() -> None:
    from asgiref.sync import SyncToAsync
    from django.db import connections

    from realtime import db

    user = "realtime/db.py (kept SQLite connections, used by realtime/auth.py and onehop.py)"
    params = inspect.signature(SyncToAsync.__init__).parameters
    assert {"thread_sensitive", "executor"} <= set(params), user
    assert "initialized_only" in inspect.signature(connections.all).parameters, user
    assert hasattr(connections["default"], "close_at"), (
        f"{user} sets Django's connection.close_at to keep the connection open"
    )

    @db.DatabaseThread("canary")
    def on_kept_thread() -> bool:
        return getattr(db._on_kept_thread, "active", False)

    assert await on_kept_thread(), (
        f"asgiref's SyncToAsync no longer calls thread_handler() in the worker thread: {user} "
        "cannot keep its connection (a new one, ~1 ms, per connect)"
    )
