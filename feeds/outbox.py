"""Frames on their way to one chat WebSocket: in order, bounded, never stalling the room.

Every frame a connection gets (its welcome, replies, and the room's frames from
feeds.fanout) goes through its Outbox. When nothing is waiting and the server can take
more, a frame is written straight to the ASGI `send` by whoever has it (the hub's
fan-out loop, mostly): no task wake-up, no per-member dispatch. Otherwise it waits in
the outbox's queue and a writer task, started on demand, drains it in order.

Neither daphne nor uvicorn bounds what it buffers for a client that does not read, so
the outbox caps the kernel's send buffer of the socket, looks at the server's write
buffer (`ServerWire`) and stops writing above HIGH_WATER_BYTES. A client whose queue
then passes MAX_QUEUED_FRAMES or MAX_QUEUED_BYTES is too slow: its queue is dropped and
it is closed with 4009 once the server's buffer has drained (the close frame then
reaches a client that reads again), or dropped outright after CLOSE_GRACE_SECONDS. It
reconnects and backfills with `history` `after` (docs/chat-protocol.md). The queue holds
references to frames shared by the whole room, so its bounds limit lag, not copies.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from socket import SO_SNDBUF, SOL_SOCKET
from typing import Any

from config import tcp
from feeds import protocol
from realtime import fastpath

logger = logging.getLogger(__name__)

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]

HIGH_WATER_BYTES = 64 * 1024
# The kernel's send buffer per socket (Linux doubles it). Left alone it grows to 4 MB
# for a client that stops reading, out of sight of the bounds below.
KERNEL_SEND_BUFFER = 128 * 1024
MAX_QUEUED_FRAMES = 1000
MAX_QUEUED_BYTES = 256 * 1024
CLOSE_GRACE_SECONDS = 10.0
DRAIN_POLL_SECONDS = 0.02

OPEN, CLOSING, CLOSED = "open", "closing", "closed"


# ---------------------------------------------------------------- the server's buffer


class ServerWire:
    """What an ASGI server lets us see of one socket: buffered bytes, and an abort."""

    __slots__ = ("transport",)

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def buffered(self) -> int:
        return self.transport.get_write_buffer_size()

    def writable(self) -> bool:
        """True when a `websocket.send` now neither blocks nor grows the buffer too far."""
        return self.buffered() < HIGH_WATER_BYTES

    def hold(self) -> None:
        """Frames written from now until flush() may go out together."""

    def flush(self) -> None:
        """Push what was just written to the socket (asyncio transports already do)."""

    def abort(self) -> None:
        self.transport.abort()

    def socket(self) -> Any:
        return self.transport.get_extra_info("socket")

    def limit_kernel_buffer(self) -> None:
        sock = self.socket()
        if sock is not None:
            try:
                sock.setsockopt(SOL_SOCKET, SO_SNDBUF, KERNEL_SEND_BUFFER)
            except OSError as exc:
                logger.debug("could not set SO_SNDBUF: %s", exc)
            # A backstop to the pings: a vanished peer with frames in flight is failed by
            # the kernel even where a server's closing handshake would wait for the buffer.
            tcp.time_out_vanished_peer(sock)


class UvicornWire(ServerWire):
    """uvicorn (websockets-sansio): `send` waits while the transport is paused; asyncio
    pauses it above 64 KiB and resumes below 16 KiB."""

    __slots__ = ("protocol",)

    def __init__(self, transport: Any, protocol: Any) -> None:
        super().__init__(transport)
        self.protocol = protocol

    def writable(self) -> bool:
        return self.protocol.writable.is_set() and self.buffered() < HIGH_WATER_BYTES


class TwistedWire(ServerWire):
    """daphne: autobahn writes into a Twisted transport that buffers without limit and
    sends on the reactor's next turn. In a fan-out that turn comes after every member's
    write, so the first reader would wait for the last; writing at once also skips a
    reactor callback per frame. A failed write is left to the reactor, which still
    watches the socket and closes it as usual. Under our launcher (config.daphne_ws) the
    protocol writes text frames itself and can hold a run of them for one send()."""

    __slots__ = ("protocol",)

    def __init__(self, transport: Any, protocol: Any) -> None:
        super().__init__(transport)
        self.protocol = protocol if hasattr(protocol, "hold") else None

    def buffered(self) -> int:
        tw = self.transport
        return len(tw.dataBuffer) - tw.offset + tw._tempDataLen

    def hold(self) -> None:
        if self.protocol is not None:
            self.protocol.hold()

    def flush(self) -> None:
        if self.protocol is not None:
            self.protocol.release()
        tw = self.transport
        if tw.connected and not tw.disconnecting and (tw._tempDataLen or tw.dataBuffer):
            tw.doWrite()

    def abort(self) -> None:
        self.transport.abortConnection()

    def socket(self) -> Any:
        # Twisted drops `.socket` once the connection is lost (a client gone before accept).
        return self.transport.getHandle() if self.transport.connected else None


def unwrap_send(send: Send) -> Send:
    """The server's own `send` under Channels' session wrapper, which only acts on HTTP
    responses: a room's frame then costs one call into the server, not two."""
    while (inner := getattr(getattr(send, "__self__", None), "real_send", None)) is not None:
        send = inner
    return send


def server_wire(send: Send) -> ServerWire | None:
    """The socket behind a server's `send`: daphne's is partial(Server.handle_reply,
    protocol) over a Twisted transport, uvicorn's a bound method of its protocol. None
    for any other server (the outbox then always writes from its own task)."""
    if isinstance(send, functools.partial) and send.args:
        tw = getattr(send.args[0], "transport", None)
        needed = ("dataBuffer", "offset", "_tempDataLen", "doWrite", "abortConnection")
        if all(hasattr(tw, name) for name in needed):
            return TwistedWire(tw, send.args[0])
        return None
    owner = getattr(send, "__self__", None)
    transport = getattr(owner, "transport", None)
    paused = getattr(owner, "writable", None)
    if hasattr(transport, "get_write_buffer_size") and isinstance(paused, asyncio.Event):
        return UvicornWire(transport, owner)
    return None


# ---------------------------------------------------------------- the outbox


class Outbox:
    """One connection's outgoing frames (event loop thread only)."""

    __slots__ = (
        "_writer",
        "close_code",
        "epoch",
        "held",
        "on_control",
        "queue",
        "queued_bytes",
        "send",
        "state",
        "user_id",
        "wire",
    )

    def __init__(
        self,
        send: Send,
        *,
        user_id: int,
        on_control: Callable[[str, str], None] | None = None,
        held: bool = False,
    ) -> None:
        self.send = unwrap_send(send)
        self.wire = server_wire(self.send)
        fastpath.note_adapter("ws", self.wire, daphne=TwistedWire, uvicorn=UvicornWire)
        if self.wire is not None:
            self.wire.limit_kernel_buffer()
        self.user_id = user_id
        # feeds.fanout's per-user events (close, recheck) and its resync after an outage.
        self.on_control = on_control
        # Held until the welcome: frames queue up behind it (see release()).
        self.held = held
        self.queue: deque[Message] = deque()
        self.queued_bytes = 0
        self.state = OPEN
        self.close_code = 0
        self.epoch = 0  # feeds.fanout: the Redis subscription this outbox was joined on
        self._writer: asyncio.Task[None] | None = None

    # -- the hot path (feeds.fanout calls these for every member of a room) ---------------

    def ready(self) -> bool:
        """True when a frame may be written now: nothing queued, the server keeps up."""
        return (
            self.wire is not None
            and not self.queue
            and self._writer is None
            and self.state is OPEN
            and not self.held
            and self.wire.writable()
        )

    async def write_now(self, message: Message) -> None:
        """Write one frame at once; only after ready() said so (then `send` never waits).
        Call flush() after the last of a series."""
        try:
            await self.send(message)
        except Exception as exc:  # the client is gone; the server ends the consumer
            self.gone(exc)

    def hold(self) -> None:
        """Let the frames written from now until flush() go out in one write (daphne);
        only after ready() said so."""
        self.wire.hold()  # type: ignore[union-attr]

    def flush(self) -> None:
        try:
            self.wire.flush()  # type: ignore[union-attr]
        except Exception as exc:
            self.gone(exc)

    def enqueue(self, message: Message, size: int) -> None:
        """Queue a frame behind the others; a client too far behind is cut off."""
        if self.state is not OPEN:
            return
        if len(self.queue) >= MAX_QUEUED_FRAMES or self.queued_bytes + size > MAX_QUEUED_BYTES:
            self.too_slow()
            return
        self.queue.append(message)
        self.queued_bytes += size
        if not self.held:
            self._start_writer()

    # -- the connection's own frames ------------------------------------------------------

    async def write(self, text: str) -> None:
        """Send one of the connection's own frames, in order with the room's."""
        message = {"type": "websocket.send", "text": text}
        if self.ready():
            await self.write_now(message)
            self.flush()
        else:
            self.enqueue(message, len(text))

    def release(self, first: str) -> None:
        """Send `first` (the welcome), then what queued while held, then go live."""
        if self.state is OPEN:
            self.queue.appendleft({"type": "websocket.send", "text": first})
            self.queued_bytes += len(first)
        self.held = False
        self._start_writer()

    # -- ending ---------------------------------------------------------------------------

    def close(self, code: int) -> None:
        """Close the socket with `code` after the frames already queued."""
        if self.state is not OPEN:
            return
        self.state = CLOSING
        self.close_code = code
        if self.held:
            self.queue.clear()  # no room frames before a welcome
            self.queued_bytes = 0
            self.held = False
        self._start_writer()

    def too_slow(self) -> None:
        """Drop what is queued and close with 4009 (see the module docstring)."""
        if self.state is not OPEN:
            return
        logger.info(
            "chat client of user %s too slow (%d frames, %d bytes queued); closing with %d",
            self.user_id,
            len(self.queue),
            self.queued_bytes,
            protocol.CLOSE_TOO_SLOW,
        )
        self.queue.clear()
        self.queued_bytes = 0
        self.close(protocol.CLOSE_TOO_SLOW)

    def gone(self, exc: BaseException | None = None) -> None:
        """The client left, or the server refused a write: write nothing more."""
        if self.state is not CLOSED and exc is not None:
            if isinstance(exc, OSError):  # the client went away (uvicorn says so)
                logger.debug("chat write for user %s failed: %r", self.user_id, exc)
            else:  # a frame the server would not send: drop the socket, do not hang it
                logger.error("chat write for user %s failed", self.user_id, exc_info=exc)
                if self.wire is not None:
                    self.wire.abort()
        self.state = CLOSED
        self.queue.clear()
        self.queued_bytes = 0
        if self._writer is not None and self._writer is not asyncio.current_task():
            self._writer.cancel()

    # -- the writer -----------------------------------------------------------------------

    def _start_writer(self) -> None:
        if self._writer is None and self.state is not CLOSED:
            self._writer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        try:
            while self.queue and self.state is not CLOSED:
                if not await self._writable():
                    continue  # the queue was dropped (too slow) while waiting
                message = self.queue.popleft()
                self.queued_bytes -= len(message.get("text", ""))
                await self.send(message)  # uvicorn waits here while its buffer is full
                if self.wire is not None:
                    self.wire.flush()
            if self.state is CLOSING:
                await self._send_close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.gone(exc)
        finally:
            self._writer = None
            if self.queue and self.state is OPEN:
                self._start_writer()  # a frame queued while the last send returned

    async def _writable(self) -> bool:
        """Wait while the server holds HIGH_WATER_BYTES or more; False if the queue emptied."""
        if self.wire is None:
            return True
        while self.wire.buffered() >= HIGH_WATER_BYTES:
            if not self.queue:
                return False
            await asyncio.sleep(DRAIN_POLL_SECONDS)
        return bool(self.queue)

    async def _send_close(self) -> None:
        # The close frame goes after what the server still buffers: wait (a while) for the
        # client to read that, so that it sees the code; drop a client that does not read.
        if self.wire is not None:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + CLOSE_GRACE_SECONDS
            while self.wire.buffered() > 0:
                if loop.time() >= deadline:
                    logger.info("chat client of user %s does not read; dropping it", self.user_id)
                    self.state = CLOSED
                    self.wire.abort()
                    return
                await asyncio.sleep(DRAIN_POLL_SECONDS)
        self.state = CLOSED
        await self.send({"type": "websocket.close", "code": self.close_code})
