"""Frames on their way to one chat WebSocket: in order, bounded, never stalling the room.

Every frame a connection gets (its welcome, replies, and its groups' frames from the
hub, realtime.hub) goes through its Outbox. When nothing is waiting and the server can take
more, a frame is written straight to the ASGI `send` by whoever has it (the hub's
fan-out loop, mostly): no task wake-up, no per-member dispatch. Otherwise it waits in
the outbox's queue and a writer task, started on demand, drains it in order.

Neither daphne nor uvicorn bounds what it buffers for a client that does not read, so
the outbox caps the kernel's send buffer of the socket, looks at the server's write
buffer (realtime.servers) and stops writing above HIGH_WATER_BYTES. A client whose queue
then passes MAX_QUEUED_FRAMES or MAX_QUEUED_BYTES is too slow: its queue is dropped and
it is closed with 4009 (CLOSE_TOO_SLOW) once the server's buffer has drained (the close frame then
reaches a client that reads again), or dropped outright after CLOSE_GRACE_SECONDS. It
reconnects and backfills (for chat, with `history` `after`: docs/chat-protocol.md). The queue holds
references to frames shared by the whole room, so its bounds limit lag, not copies.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from realtime import fastpath, metrics, servers
from realtime.wire import CLOSE_RESYNC, CLOSE_TOO_SLOW, PUBLISHED_AT

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


# ---------------------------------------------------------------- the outbox


class Outbox:
    """One connection's outgoing frames (event loop thread only); a member of the hub."""

    kind: Any = None  # WEBSOCKETS, set below

    __slots__ = (
        "_counted",
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
        on_control: Callable[[dict[str, Any]], None] | None = None,
        held: bool = False,
    ) -> None:
        self.send = servers.unwrap_send(send)
        self.wire = servers.for_websocket(self.send)
        fastpath.note_adapter(
            "ws", self.wire, daphne=servers.TwistedSocket, uvicorn=servers.ServerSocket
        )
        if self.wire is not None:
            self.wire.prepare(KERNEL_SEND_BUFFER)
        self.user_id = user_id
        # Group messages that carry no frame (a close, a recheck): the consumer acts on them.
        self.on_control = on_control
        # Held until the welcome: frames queue up behind it (see release()).
        self.held = held
        self.queue: deque[Message] = deque()
        self.queued_bytes = 0
        self.state = OPEN
        self.close_code = 0
        self.epoch = 0  # realtime.hub: the Redis subscription this outbox was joined on
        self._writer: asyncio.Task[None] | None = None
        self._counted = True  # among the open connections until gone()
        metrics.WS_CHAT_OPEN.inc()

    # -- the hot path (WEBSOCKETS.deliver calls these for every member of a group) --------

    def ready(self) -> bool:
        """True when a frame may be written now: nothing queued, the server keeps up."""
        return (
            self.wire is not None
            and not self.queue
            and self._writer is None
            and self.state is OPEN
            and not self.held
            and self.wire.writable(HIGH_WATER_BYTES)
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
            CLOSE_TOO_SLOW,
        )
        metrics.WS_CHAT_CUTOFFS.inc()
        self.queue.clear()
        self.queued_bytes = 0
        self.close(CLOSE_TOO_SLOW)

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
        if self._counted:
            self._counted = False
            metrics.WS_CHAT_OPEN.dec()
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


# ---------------------------------------------------------------- as members of the hub

# Hand the event loop back to other sockets every so many members of a big group.
YIELD_EVERY = 100


class _WebSocketKind:
    """Outboxes as members of realtime.hub: a group message with `text` is a frame written
    to every member, encoded once (`skip_user`: not to that user's sockets); any other
    message goes to each member's `on_control`."""

    async def deliver(self, members: tuple[Outbox, ...], messages: list[dict[str, Any]]) -> None:
        run: list[Frame] = []
        published: list[float] = []
        for message in messages:
            text = message.get("text")
            if text is not None:
                run.append(
                    ({"type": "websocket.send", "text": text}, len(text), message.get("skip_user"))
                )
                if PUBLISHED_AT in message:
                    published.append(message[PUBLISHED_AT])
                continue
            if run:
                await self._fan_out(members, run, published)
                run, published = [], []
            for outbox in members:
                if outbox.on_control is not None and outbox.state is OPEN:
                    outbox.on_control(message)
        if run:
            await self._fan_out(members, run, published)

    async def _fan_out(
        self, members: tuple[Outbox, ...], run: list[Frame], published: list[float]
    ) -> None:
        # Counted once per run of frames, not per member (realtime.metrics).
        metrics.WS_CHAT_DELIVERED.inc(await fan_out(members, run))
        for published_at in published:
            metrics.observe_latency(metrics.WS_CHAT_LATENCY, published_at)

    def resync(self, members: list[Outbox], epoch: int) -> None:
        """Close the sockets joined on an earlier connection: they may have missed frames.
        The client reconnects and backfills."""
        closed = 0
        for outbox in members:
            if 0 < outbox.epoch < epoch and outbox.state is OPEN:
                outbox.close(CLOSE_RESYNC)
                closed += 1
        metrics.WS_CHAT_RESYNCS.inc(closed)

    def __repr__(self) -> str:
        return "websockets"


WEBSOCKETS = _WebSocketKind()
Outbox.kind = WEBSOCKETS

Frame = tuple[Message, int, "int | None"]


async def fan_out(members: tuple[Outbox, ...], frames: list[Frame]) -> int:
    """Write encoded frames to every member: at once where the socket keeps up, queued
    behind its earlier frames where it does not. Returns how many (frame, member) pairs."""
    several = len(frames) > 1
    handed = 0
    for i, outbox in enumerate(members, 1):
        user_id = outbox.user_id
        wrote = False
        for message, size, skip_user in frames:
            if user_id == skip_user:
                continue
            handed += 1
            if outbox.ready():
                if several and not wrote:
                    outbox.hold()  # the socket's run of frames in one write
                await outbox.write_now(message)
                wrote = True
            else:
                outbox.enqueue(message, size)
        if wrote:
            outbox.flush()
        if i % YIELD_EVERY == 0:
            await asyncio.sleep(0)
    return handed
