"""This process's side of the channel layer: one Redis subscription, groups -> local members.

Every server process (every event loop) runs one Hub, owned by its Pulse channel layer
(realtime.layer). It holds one Redis pub/sub connection subscribed to exactly the Redis
channels its local members need, and for each of those a set of members by kind:
ordinary Channels consumers (a queue per channel name, as with channels-redis), chat
sockets (realtime.outbox) and SSE streams (realtime.sse). A message is deserialized once
per process and handed to each kind once, with all its local members: WebSocket frames
are written once-encoded to every socket, SSE events encoded once for every stream, and
no consumer is woken per member. Messages that arrived from Redis together are delivered
together, so a socket that keeps up gets a run of frames in one write.

Nothing is missed silently. A member joins only once Redis has confirmed its channels, so
what it reads from the database afterwards and what arrives live overlap rather than
leave a gap. If the subscription breaks (Redis restarts, the connection dies or stops
answering pings), the hub reconnects with backoff, subscribes again and then asks each
kind to resync its members that may have missed messages: chat sockets close with 4012
and backfill, SSE streams re-read their channels from storage.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import random
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import redis

from realtime import metrics
from realtime.redis_clients import subscriber_client

logger = logging.getLogger(__name__)

# Wait this long for Redis to confirm a subscription before refusing a join.
JOIN_TIMEOUT = 5.0
# Ping an idle subscription this often; a reply later than PONG_TIMEOUT ends it.
PING_SECONDS = 5.0
PONG_TIMEOUT = 5.0
RECONNECT_MIN = 0.1
RECONNECT_MAX = 5.0
# Messages already received from Redis are delivered together, up to this many.
BATCH_MAX = 64

# Shared by every hub (tests run one per event loop), so a version is never seen twice.
_ticks = itertools.count(1)


class Unavailable(Exception):
    """Redis did not confirm the subscription in time."""


class Kind(Protocol):
    """How one kind of member takes messages: once per delivery, with all its members."""

    async def deliver(self, members: tuple[Any, ...], messages: list[dict[str, Any]]) -> None: ...

    def resync(self, members: list[Any], epoch: int) -> None:
        """The subscription was restored at `epoch`: these members may have missed some."""


class Member(Protocol):
    kind: Kind
    # The hub connection it was joined on (0 while joining); set by the hub.
    epoch: int


class Hub:
    """Redis channel -> {kind: members}, and the one subscription that feeds them."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        deserialize: Callable[[bytes], dict[str, Any]],
        *,
        name: str = "pulse-hub",
    ) -> None:
        self.loop = loop
        self.deserialize = deserialize
        self.name = name
        self.members: dict[str, dict[Kind, set[Member]]] = {}
        self._joined: dict[Member, tuple[str, ...]] = {}
        # Subscribe/unsubscribe commands sent per channel whose reply has not come back:
        # a channel is live only when none is pending and the last one was a subscribe.
        self._inflight: dict[str, int] = {}
        self._live: set[str] = set()
        self._waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._pubsub: Any = None
        self._queued: list[tuple[str, str]] = []  # (command, channel) for _send_commands
        self.epoch = 0  # one per Redis connection
        # The last connection failed and no new one is up yet: joins do not wait for Redis.
        self.failing = False
        self._task: asyncio.Task[None] | None = None
        # Per live channel, a tick taken when it became live and at each message it carried
        # since: equal ticks mean nothing reached the channel in between (version()).
        self._changed: dict[str, int] = {}

    # -- membership -----------------------------------------------------------------------

    async def join(self, member: Member, channels: Iterable[str], *, wait: bool = True) -> bool:
        """Deliver these Redis channels' messages to `member` from now on.

        `wait`: return once Redis confirmed them (Unavailable after JOIN_TIMEOUT). Without
        it, return at once; the result says whether they were live already. A member that
        joined while the hub was disconnected is resynced when it reconnects.
        """
        self._ensure_running()
        channels = tuple(dict.fromkeys(channels))
        self._joined[member] = self._joined.get(member, ()) + channels
        pending = []
        for channel in channels:
            kinds = self.members.get(channel)
            if kinds is None:
                kinds = self.members[channel] = {}
                self._command("subscribe", channel)
            kinds.setdefault(member.kind, set()).add(member)
            if channel not in self._live:
                pending.append(channel)
        member.epoch = 0  # joining: a resync meanwhile does not concern it
        if pending and wait:
            try:
                async with asyncio.timeout(JOIN_TIMEOUT):
                    await asyncio.gather(*(self._wait_live(c) for c in pending))
            except TimeoutError:
                self.leave(member, channels)
                raise Unavailable("Redis did not confirm the subscription") from None
        elif pending:
            return False
        member.epoch = self.epoch
        return True

    def leave(self, member: Member, channels: Iterable[str] | None = None) -> None:
        """Stop delivering these channels (all of the member's if None) to `member`."""
        joined = self._joined.pop(member, ())
        leaving = joined if channels is None else tuple(channels)
        remaining = tuple(c for c in joined if c not in leaving)
        if remaining:
            self._joined[member] = remaining
        for channel in dict.fromkeys(leaving):
            kinds = self.members.get(channel)
            if kinds is None:
                continue
            members = kinds.get(member.kind)
            if members is not None:
                members.discard(member)
                if not members:
                    del kinds[member.kind]
            if not kinds:
                del self.members[channel]
                self._live.discard(channel)
                self._changed.pop(channel, None)
                self._waiters.pop(channel, None)
                self._command("unsubscribe", channel)

    def count(self, kind: Kind | None = None) -> int:
        """Members of this process (of one kind)."""
        return sum(1 for m in tuple(self._joined) if kind is None or m.kind is kind)

    def members_of(self, kind: Kind) -> list[Member]:
        """This process's members of one kind (realtime.drain moves them off)."""
        return [m for m in tuple(self._joined) if m.kind is kind]

    def version(self, channel: str) -> int | None:
        """A value that stays the same while no message reaches `channel` on this process.

        None while the channel is not live here (nothing can vouch for it); a new Redis
        connection makes it live again with a new value. Cache what was read for the
        channel while this value holds (feeds.welcome)."""
        return self._changed[channel] if channel in self._live else None

    def _touch(self, channel: str) -> None:
        self._changed[channel] = next(_ticks)

    def _wait_live(self, channel: str) -> asyncio.Future[None]:
        future = self.loop.create_future()
        self._waiters.setdefault(channel, []).append(future)
        return future

    def _command(self, command: str, channel: str) -> None:
        """Send SUBSCRIBE/UNSUBSCRIBE this loop turn if connected (else the next connection
        does)."""
        if self._pubsub is None:
            return
        self._inflight[channel] = self._inflight.get(channel, 0) + 1
        if not self._queued:
            self.loop.call_soon(self._send_commands)
        self._queued.append((command, channel))

    def _send_commands(self) -> None:
        """One command per run of same-kind commands queued this turn, in order: a burst of
        connects (each subscribing its user's channel) costs a few commands, not one each."""
        queued, self._queued = self._queued, []
        pubsub = self._pubsub
        if pubsub is None:
            return  # the next connection subscribes to what the members need itself
        for command, run in itertools.groupby(queued, key=lambda queued: queued[0]):
            method = pubsub.subscribe if command == "subscribe" else pubsub.unsubscribe
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
            except asyncio.CancelledError:
                raise
            except (redis.RedisError, OSError, TimeoutError) as exc:
                self.failing = True
                logger.warning("live subscription lost: %r; reconnecting", exc)
            except Exception:
                self.failing = True
                logger.exception("live subscription failed; reconnecting")
            failures = 1 if self.loop.time() - started > RECONNECT_MAX else failures + 1
            delay = min(RECONNECT_MAX, RECONNECT_MIN * 2 ** (failures - 1))
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))

    async def _session(self) -> None:
        client = subscriber_client(self.name)
        pubsub = client.pubsub()
        try:
            await pubsub.connect()
            self.failing = False
            self.epoch += 1
            if self.epoch > 1:
                metrics.RELAY_RECONNECTS.inc()
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
            batch: list[tuple[str, bytes]] = []
            while message is not None:
                kind = message["type"]
                if kind == b"message" or kind == "message":
                    batch.append((_text(message["channel"]), message["data"]))
                elif kind in ("subscribe", "unsubscribe", b"subscribe", b"unsubscribe"):
                    self._confirmed(_text(message["channel"]))
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
        """Ask each kind to resync its members: they may have missed messages."""
        by_kind: dict[Kind, list[Member]] = {}
        for member in self._joined:
            by_kind.setdefault(member.kind, []).append(member)
        logger.warning("live subscription restored; %d members resync", len(self._joined))
        for kind, members in by_kind.items():
            try:
                kind.resync(members, self.epoch)
            except Exception:
                logger.exception("resync of %r failed", kind)

    # -- delivery -------------------------------------------------------------------------

    async def deliver(self, batch: list[tuple[str, bytes]]) -> None:
        """Hand (channel, payload) pairs to local members, in order; consecutive messages
        of one channel go to each kind together."""
        for channel, _ in batch:
            if channel in self._changed:
                self._touch(channel)  # before any member sees the message (version())
        run_channel, run = "", []
        for channel, data in batch:
            try:
                message = self.deserialize(data)
            except Exception:
                logger.exception("dropping a malformed message on %s", channel)
                continue
            if channel == run_channel:
                run.append(message)
                continue
            if run:
                await self._fan_out(run_channel, run)
            run_channel, run = channel, [message]
        if run:
            await self._fan_out(run_channel, run)

    async def _fan_out(self, channel: str, messages: list[dict[str, Any]]) -> None:
        kinds = self.members.get(channel)
        if not kinds:
            return
        for kind, members in tuple(kinds.items()):
            try:
                await kind.deliver(tuple(members), messages)
            except Exception:
                logger.exception("delivery on %s to %r failed", channel, kind)


def _text(name: str | bytes) -> str:
    return name.decode() if isinstance(name, bytes) else name


def _log_command_failure(task: asyncio.Task[Any]) -> None:
    # The connection broke under the command: the reader sees it too and reconnects.
    if not task.cancelled() and task.exception() is not None:
        logger.debug("subscription command failed: %r", task.exception())
