"""daphne's WebSocket protocol with a short send path for text frames (room fan-out).

The hub (realtime.outbox.fan_out) hands one ASGI message, and so one `text` str object,
to every member of a room. Stock daphne then, per member, encodes the text to UTF-8, has
autobahn build the frame in Python and write it through `sendData` (which formats its
debug-log arguments even with debug logging off), and Twisted's `write` registers the
socket for writing (`epoll_ctl`) so that a later `doWrite` sends it and unregisters it
(another `epoll_ctl`). Here a text frame is built once per str object (autobahn's
`prepareMessage`, meant for broadcasts) and written straight to the socket when nothing
is buffered for it: one `send()` per delivery. What the kernel does not take goes to
Twisted's buffer, which then writes it as usual; later frames queue behind it, in order.
A batch of several frames for one socket can be held (realtime.outbox) and sent
together.

Anything unusual (binary, not open yet or closing, compression, fragmentation,
oversized, autobahn's send queue or logging switched on, TLS) takes daphne's own path,
which applies its checks and raises as before. autobahn's traffic counters, which
nothing reads, do not count the frames sent here; realtime.fastpath counts both paths.

Any daphne started through its command line gets this factory: config.asgi calls
install_if_daphne_cli() when the CLI imports the application (tests/test_canaries.py
checks the daphne internals this relies on).
"""

from __future__ import annotations

import sys
from typing import Any

from daphne import server  # installs Twisted's asyncio reactor first
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import tcp

from realtime import fastpath

# Text frames written by the prepared path and by daphne's own (GET /api/health/).
_PREPARED_FRAMES = fastpath.tally("ws-daphne-prepared-frames")
_STOCK_FRAMES = fastpath.tally("ws-daphne-stock-frames")

# Frames built for recent str objects: a batch from the hub has at most 64 frames
# (BATCH_MAX), each written to every member in turn. Bigger frames than CACHED_PAYLOAD
# (2,000 characters of chat content are at most ~25 KiB of JSON) are built per member,
# so the cache holds at most ~2 MiB.
CACHED_FRAMES = 64
CACHED_PAYLOAD = 32 * 1024
# Internal Error, Service Restart, Try Again Later: sent by servers, refused by autobahn's
# sendClose from an application.
SERVER_CLOSE_CODES = frozenset({1011, 1012, 1013})
# A run of held frames is written once it reaches this size: realtime.outbox, which only
# sees Twisted's buffer, may hold this much more than it counts.
HELD_BYTES = 16 * 1024


class FrameCache:
    """Recently built text frames, by the identity of their str. Holding the str keeps its
    id from being reused, so a hit is always the same text."""

    __slots__ = ("frames", "prepare")

    def __init__(self, prepare: Any) -> None:
        self.prepare = prepare  # the factory's prepareMessage
        self.frames: dict[int, tuple[str, bytes]] = {}

    def frame(self, text: str, payload: bytes) -> bytes:
        raw: bytes = self.prepare(payload).payloadHybi
        if len(payload) <= CACHED_PAYLOAD:
            if len(self.frames) >= CACHED_FRAMES:
                del self.frames[next(iter(self.frames))]  # the oldest
            self.frames[id(text)] = (text, raw)
        return raw


class FanoutWebSocketProtocol(WebSocketProtocol):
    """daphne's protocol; text frames go out as one prepared frame with one send(), and a
    run of them held with hold() goes out with one send() at release()."""

    _held: list[bytes] | None = None
    _held_bytes = 0

    def serverSend(self, content: Any, binary: bool = False) -> None:
        if binary or not self._plain_send():
            _STOCK_FRAMES.n += 1
            super().serverSend(content, binary)
            return
        cached = self.factory.frame_cache.frames.get(id(content))
        if cached is not None and cached[0] is content:
            raw = cached[1]
        else:
            payload = content.encode("utf8")
            if 0 < self.maxMessagePayloadSize < len(payload) or (
                0 < self.autoFragmentSize < len(payload)
            ):
                _STOCK_FRAMES.n += 1
                self.sendMessage(payload, False)  # autobahn refuses or fragments it
                return
            raw = self.factory.frame_cache.frame(content, payload)
        _PREPARED_FRAMES.n += 1
        held = self._held
        if held is None:
            self._write_frame(raw)
            return
        held.append(raw)
        self._held_bytes += len(raw)
        if self._held_bytes >= HELD_BYTES:
            self._write_held()

    def serverClose(self, code: int | None = None) -> None:
        # autobahn lets an application close only with 1000 or 3000-4999; the codes RFC 6455's
        # registry gives servers (1012: a process restarting, realtime.drain) go out as such.
        if code in SERVER_CLOSE_CODES:
            if self.state == self.STATE_OPEN:
                self.sendCloseFrame(code=code, isReply=False)
            return
        super().serverClose(code)

    def hold(self) -> None:
        """Keep text frames back until release() (realtime.outbox, around a run of writes)."""
        if self._held is None:
            self._held = []

    def release(self) -> None:
        """Write the held frames with one send() and stop holding."""
        if self._held is not None:
            self._write_held()
            self._held = None

    def sendData(self, data: bytes, sync: bool = False, chopsize: int | None = None) -> None:
        # Every other frame autobahn writes (close, ping, pong) goes after the held ones.
        self.release()
        super().sendData(data, sync, chopsize)

    def _write_held(self) -> None:
        held = self._held
        if held:
            self._held = []
            self._held_bytes = 0
            self._write_frame(held[0] if len(held) == 1 else b"".join(held))

    def _plain_send(self) -> bool:
        """True when autobahn's sendMessage would write one unmasked, uncompressed frame
        through transport.write at once, with nothing to log or time."""
        return (
            self.state == self.STATE_OPEN
            and self._perMessageCompress is None
            and not self.send_queue
            and not self.logFrames
            and not self.logOctets
            and self.trackedTimings is None
            and isinstance(self.transport, tcp.Connection)
        )

    def _write_frame(self, raw: bytes) -> None:
        """send() it now if nothing waits in Twisted's buffer; buffer what is left over.
        A failing send() is left to Twisted, whose next write attempt meets the error and
        closes the connection the usual way."""
        tw = self.transport
        if (
            tw._tempDataLen
            or tw.offset < len(tw.dataBuffer)
            or not tw.connected
            or tw.disconnecting
        ):
            tw.write(raw)
            return
        try:
            sent = tw.socket.send(raw)
        except OSError:  # BlockingIOError included
            sent = 0
        if sent < len(raw):
            tw.write(raw[sent:] if sent else raw)


class ClosingWebSocketFactory(WebSocketFactory):
    """daphne's factory with FanoutWebSocketProtocol, answering oversized messages with 1009.

    Stock daphne leaves autobahn's `failByDrop` on, so a message over
    `--websocket-max-message-size` makes it drop the TCP connection without a close frame
    (clients see 1006). With it off, autobahn sends the 1009 close the protocol asks for;
    either way the message never reaches the application.
    """

    protocol = FanoutWebSocketProtocol

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frame_cache = FrameCache(self.prepareMessage)

    def setProtocolOptions(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("failByDrop", False)
        super().setProtocolOptions(*args, **kwargs)


def install() -> None:
    """Make daphne.server build this factory: its Server.run() looks `WebSocketFactory` up
    in its module when it starts. Idempotent."""
    server.WebSocketFactory = ClosingWebSocketFactory


# The modules that build a daphne Server after importing the application: its command
# line (`daphne config.asgi:...`, `python -m daphne`, config.daphne_server) and its
# `manage.py runserver`.
DAPHNE_LAUNCHERS = ("daphne.cli", "daphne.management.commands.runserver")


def install_if_daphne_cli() -> bool:
    """install() when this process runs daphne (DAPHNE_LAUNCHERS), which imports the
    application before it builds its Server. Nothing under any other server (uvicorn
    imports daphne.server too, through INSTALLED_APPS, but no launcher of daphne's)."""
    if not any(name in sys.modules for name in DAPHNE_LAUNCHERS):
        return False
    install()
    return True
