"""Room and user events between server processes: one Redis subscription per process.

feeds.events publishes each event once to a Redis pub/sub channel, `chat:room:<id>` or
`chat:user:<id>`. Every server process runs one Hub: one Redis connection subscribed to
the channels its open sockets need, and a map channel -> local outboxes. A room frame,
JSON-encoded once by the publisher, is written to each local member's ASGI `send` in one
loop (feeds.outbox), with no channel-layer message and no consumer wake-up per member;
frames that arrived from Redis together go out together, a run of writes per socket.

Nothing is missed silently. A socket joins only once Redis has confirmed its channels,
so what it reads from the database afterwards and what arrives live overlap rather than
leave a gap. If the subscription breaks (Redis restarts, the connection dies or stops
answering pings), the hub reconnects with backoff, subscribes again and then closes
every socket that was open before the break with 4012: the client reconnects and
backfills with `history` `after` (docs/chat-protocol.md). A publish that fails (Redis
away) is logged; the message is stored and reaches clients through that backfill.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import random
import threading
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from feeds import protocol
from feeds.outbox import Outbox
from realtime.redis_state import async_client

logger = logging.getLogger(__name__)

# Wait this long for Redis to confirm a subscription before refusing a join.
JOIN_TIMEOUT = 5.0
# Ping an idle subscription this often; a reply later than PONG_TIMEOUT ends it.
PING_SECONDS = 5.0
PONG_TIMEOUT = 5.0
RECONNECT_MIN = 0.1
RECONNECT_MAX = 5.0
CONNECT_TIMEOUT = 2.0
# Hand the event loop back to other sockets every so many members of a big room.
YIELD_EVERY = 100
# Frames already received from Redis are delivered together, up to this many.
BATCH_MAX = 64

FRAME, CLOSE, RECHECK = "frame", "close", "recheck"


# Shared by every hub (tests run one per event loop), so a version is never seen twice.
_ticks = itertools.count(1)


class Unavailable(Exception):
    """Redis did not confirm the subscription in time."""


def room_channel(room_id: int) -> str:
    return f"chat:room:{room_id}"


def user_channel(user_id: int) -> str:
    return f"chat:user:{user_id}"


# ---------------------------------------------------------------- publishing


def envelope(kind: str, arg: object = "", text: str = "") -> str:
    """What travels through Redis: `kind`, one argument and the frame, one line each."""
    return f"{kind}\n{arg}\n{text}"


# Publishing after commit must not stall its caller while Redis is away: on-commit
# callbacks run in the thread that every database call of the process shares. Retry
# briefly (a connection left stale by a Redis restart), then give up.
_sync_publisher: redis.Redis | None = None
_sync_lock = threading.Lock()


def _publisher() -> redis.Redis:
    global _sync_publisher
    with _sync_lock:
        if _sync_publisher is None:
            _sync_publisher = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=CONNECT_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT,
                retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 2),
            )
        return _sync_publisher


def publish(channel: str, data: str) -> None:
    """Publish from synchronous code (on-commit callbacks); failures are logged."""
    try:
        _publisher().publish(channel, data)
    except (redis.RedisError, OSError) as exc:
        logger.error("chat publish to %s failed (clients backfill it): %s", channel, exc)


async def apublish(channel: str, data: str) -> None:
    """Publish from the event loop (typing, presence); failures are logged."""
    try:
        await async_client().publish(channel, data)
    except (redis.RedisError, OSError) as exc:
        logger.error("chat publish to %s failed (clients backfill it): %s", channel, exc)


# ---------------------------------------------------------------- the hub


class Hub:
    """This process's chat subscribers: channel -> outboxes, and the Redis subscription."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.members: dict[str, set[Outbox]] = {}
        self._rooms: dict[Outbox, int] = {}
        # Subscribe/unsubscribe commands sent per channel whose reply has not come back:
        # a channel is live only when none is pending and the last one was a subscribe.
        self._inflight: dict[str, int] = {}
        self._live: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: Any = None
        self._queued: list[tuple[str, str]] = []  # (kind, channel) for _send_commands
        self.epoch = 0  # one per Redis connection
        self._task: asyncio.Task[None] | None = None
        # Per live channel, a tick taken when it became live and at each frame it carried
        # since: equal ticks mean nothing reached the channel in between (room_version).
        self._changed: dict[str, int] = {}

    # -- membership -----------------------------------------------------------------------

    async def join(self, outbox: Outbox, *, room_id: int) -> None:
        """Deliver the room's and the user's events to `outbox` once Redis confirms both."""
        self._ensure_running()
        self._rooms[outbox] = room_id
        channels = (room_channel(room_id), user_channel(outbox.user_id))
        waits = []
        for channel in channels:
            members = self.members.get(channel)
            if members is None:
                members = self.members[channel] = set()
                self._command("subscribe", channel)
            members.add(outbox)
            if channel not in self._live:
                waits.append(self._wait_live(channel))
        outbox.epoch = 0  # joining: a resync meanwhile does not concern it
        if waits:
            try:
                async with asyncio.timeout(JOIN_TIMEOUT):
                    await asyncio.gather(*waits)
            except TimeoutError:
                self.leave(outbox)
                raise Unavailable("Redis did not confirm the subscription") from None
        outbox.epoch = self.epoch

    def leave(self, outbox: Outbox) -> None:
        room_id = self._rooms.pop(outbox, None)
        if room_id is None:
            return
        for channel in (room_channel(room_id), user_channel(outbox.user_id)):
            members = self.members.get(channel)
            if members is None:
                continue
            members.discard(outbox)
            if not members:
                del self.members[channel]
                self._live.discard(channel)
                self._changed.pop(channel, None)
                self._waiters.pop(channel, None)
                self._command("unsubscribe", channel)

    def __len__(self) -> int:
        return len(self._rooms)

    def room_version(self, room_id: int) -> int | None:
        """A value that stays the same while no frame reaches the room on this process.

        None while the room's channel is not live here (nothing can vouch for it); a new
        Redis connection makes it live again with a new value. Cache what was read from the
        room while this value holds (feeds.welcome)."""
        channel = room_channel(room_id)
        return self._changed[channel] if channel in self._live else None

    def _touch(self, channel: str) -> None:
        self._changed[channel] = next(_ticks)

    def _wait_live(self, channel: str) -> asyncio.Future[None]:
        future = self.loop.create_future()
        self._waiters.setdefault(channel, []).append(future)
        return future

    def _command(self, kind: str, channel: str) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE this loop turn if connected (else the next connection
        does)."""
        pubsub = self._pubsub
        if pubsub is None:
            return
        self._inflight[channel] = self._inflight.get(channel, 0) + 1
        if not self._queued:
            self.loop.call_soon(self._send_commands)
        self._queued.append((kind, channel))

    def _send_commands(self) -> None:
        """One command per run of same-kind commands queued this turn, in order: a burst of
        connects (each subscribing its user's channel) costs a few commands, not one each."""
        queued, self._queued = self._queued, []
        pubsub = self._pubsub
        if pubsub is None:
            return  # the next connection subscribes to what the members need itself
        for kind, run in itertools.groupby(queued, key=lambda command: command[0]):
            method = pubsub.subscribe if kind == "subscribe" else pubsub.unsubscribe
            task = self.loop.create_task(method(*(channel for _, channel in run)))
            task.add_done_callback(_log_command_failure)

    # -- the subscription -----------------------------------------------------------------

    def _ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = self.loop.create_task(self._run())

    async def _run(self) -> None:
        failures = 0
        while True:
            started = self.loop.time()
            try:
                await self._session()
            except (redis.RedisError, OSError, TimeoutError) as exc:
                logger.warning("chat subscription lost: %r; reconnecting", exc)
            except Exception:
                logger.exception("chat subscription failed; reconnecting")
            failures = 1 if self.loop.time() - started > RECONNECT_MAX else failures + 1
            delay = min(RECONNECT_MAX, RECONNECT_MIN * 2 ** (failures - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _session(self) -> None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL,
            socket_connect_timeout=CONNECT_TIMEOUT,
            socket_timeout=None,
            decode_responses=True,
            client_name=f"chat-fanout-{os.getpid()}",  # in CLIENT LIST, for operators
            # No silent reconnects: a new connection must be followed by a resync.
            retry=Retry(NoBackoff(), 0, supported_errors=()),
        )
        pubsub = client.pubsub()
        try:
            await pubsub.connect()
            self.epoch += 1
            self._inflight.clear()
            self._live.clear()
            self._changed.clear()
            self._queued.clear()  # meant for the last connection; `wanted` covers them
            self._pubsub = pubsub
            wanted = list(self.members)
            for channel in wanted:
                self._inflight[channel] = 1
            if wanted:
                await pubsub.subscribe(*wanted)
            await self._read(pubsub, resync=self.epoch > 1)
        finally:
            self._pubsub = None
            self._live.clear()
            self._changed.clear()
            await pubsub.aclose()
            await client.aclose()

    async def _read(self, pubsub: Any, *, resync: bool) -> None:
        last_heard = self.loop.time()
        pinged = False
        while True:
            if resync and all(channel in self._live for channel in self.members):
                resync = False
                self._resync()
            message = await pubsub.get_message(timeout=PING_SECONDS)
            now = self.loop.time()
            if message is None:
                if pinged and now - last_heard > PING_SECONDS + PONG_TIMEOUT:
                    raise TimeoutError("Redis stopped answering pings")
                if now - last_heard >= PING_SECONDS:
                    await pubsub.ping()
                    pinged = True
                continue
            last_heard, pinged = now, False
            batch: list[tuple[str, str]] = []
            while message is not None:
                kind = message["type"]
                if kind == "message":
                    batch.append((message["channel"], message["data"]))
                elif kind in ("subscribe", "unsubscribe"):
                    self._confirmed(message["channel"])
                if len(batch) >= BATCH_MAX:
                    break
                # What Redis has already sent goes out together (see deliver()).
                message = await pubsub.get_message(timeout=0)
            await self.deliver(batch)

    def _confirmed(self, channel: str) -> None:
        left = self._inflight.get(channel, 0) - 1
        if left > 0:
            self._inflight[channel] = left
            return
        self._inflight.pop(channel, None)
        if channel in self.members:
            self._live.add(channel)
            self._touch(channel)
            for future in self._waiters.pop(channel, ()):
                if not future.done():
                    future.set_result(None)

    def _resync(self) -> None:
        """Close the sockets joined on an earlier connection: they may have missed frames."""
        stale = [o for o in self._rooms if 0 < o.epoch < self.epoch]
        if stale:
            logger.warning("chat subscription restored; %d sockets resync", len(stale))
        for outbox in stale:
            outbox.close(protocol.CLOSE_RESYNC)

    # -- delivery -------------------------------------------------------------------------

    async def deliver(self, batch: list[tuple[str, str]]) -> None:
        """Hand (channel, envelope) pairs to local members, in order. Consecutive frames
        for one room go out together: a socket that keeps up gets them in one write."""
        for channel, _ in batch:
            if channel in self._changed:
                self._touch(channel)  # before any member sees the frame (room_version)
        run_channel, run = "", []
        for channel, data in batch:
            kind, arg, text = data.split("\n", 2)
            if kind == FRAME and channel == run_channel:
                run.append(_frame(text, arg))
                continue
            if run:
                await self.fan_out(run_channel, run)
            run_channel, run = "", []
            if kind == FRAME:
                run_channel, run = channel, [_frame(text, arg)]
            elif kind in (CLOSE, RECHECK):
                for outbox in tuple(self.members.get(channel, ())):
                    if outbox.on_control is not None:
                        outbox.on_control(kind, arg)
        if run:
            await self.fan_out(run_channel, run)

    async def fan_out(self, channel: str, frames: list[Frame]) -> None:
        """Write encoded frames to every member of the channel: at once where the socket
        keeps up, queued behind its earlier frames where it does not."""
        members = tuple(self.members.get(channel, ()))
        several = len(frames) > 1
        for i, outbox in enumerate(members, 1):
            user_id = outbox.user_id
            wrote = False
            for message, size, skip_user in frames:
                if user_id == skip_user:
                    continue
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


Frame = tuple[dict[str, str], int, int | None]


def _frame(text: str, skip_user: str) -> Frame:
    message = {"type": "websocket.send", "text": text}
    return message, len(text), int(skip_user) if skip_user else None


def _log_command_failure(task: asyncio.Task[Any]) -> None:
    # The connection broke under the command: the reader sees it too and reconnects.
    if not task.cancelled() and task.exception() is not None:
        logger.debug("chat subscription command failed: %r", task.exception())


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Hub] = weakref.WeakKeyDictionary()


def local_sockets() -> int:
    """Chat sockets this process delivers to (a gauge of GET /api/health/)."""
    return sum(len(h._rooms) for h in tuple(_hubs.values()))


def subscribed_channels() -> int:
    """Redis channels this process is subscribed to for chat (a gauge of GET /api/health/)."""
    return sum(len(h.members) for h in tuple(_hubs.values()))


def hub() -> Hub:
    """This event loop's hub (one per server process; one per test in tests)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        found = _hubs[loop] = Hub(loop)
    return found
