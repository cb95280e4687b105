"""The Pulse channel layer: channels-redis's pub/sub layer with one subscription per process
and encode-once delivery to Pulse's own sockets and streams.

Configured in CHANNEL_LAYERS like any Channels layer, it keeps the standard API: a
consumer calls `group_add`, `group_send`, `send` and `receive` as with channels-redis's
`RedisPubSubChannelLayer`, whose Redis channel names and message serializer it shares (a
process running that stock layer with the same prefix exchanges group messages with
this one). What differs is the receiving side (realtime.hub): each process holds one Redis
connection subscribed to the groups its local members need, confirmed before a join
returns, and a message is deserialized once per process and handed to every local member
by kind: a queue per ordinary consumer, and in one pass frames written once-encoded to
Pulse's chat sockets (realtime.outbox) and events encoded once for SSE streams
(realtime.sse), with no consumer dispatch per member.

Redis comes from settings.REDIS_URL, or the primary Sentinel names (realtime.redis_clients),
as for everything else in Pulse. CONFIG takes `prefix`, `capacity`, and channels-redis's
`serializer_format` and `symmetric_encryption_keys`.

Synchronous code publishes with `publish_sync()` (several messages, one round trip),
which is what services call after commit; `async_to_sync(layer.group_send)` works too.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from collections.abc import Iterable
from typing import Any

import redis
from channels.layers import get_channel_layer
from channels_redis.pubsub import RedisPubSubChannelLayer
from django.core.exceptions import ImproperlyConfigured

from realtime import metrics
from realtime.hub import Hub
from realtime.redis_clients import async_publisher, publisher
from realtime.wire import GROUP_NAME

logger = logging.getLogger(__name__)

DEFAULT_CAPACITY = 1000


class ChannelQueue:
    """One ordinary consumer's channel in this process: a bounded queue."""

    __slots__ = ("epoch", "name", "queue")

    def __init__(self, name: str, capacity: int) -> None:
        self.name = name
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(capacity)
        self.epoch = 0

    kind: Any = None  # set below


class _QueueKind:
    """Ordinary consumers: each gets its own copy of every message, as with channels-redis.
    A consumer that does not keep up loses messages past its capacity (logged)."""

    async def deliver(self, members: tuple[ChannelQueue, ...], messages: list[dict]) -> None:
        for member in members:
            for message in messages:
                try:
                    member.queue.put_nowait(dict(message))
                except asyncio.QueueFull:
                    logger.warning(
                        "channel %s is full; dropping a %r", member.name, message.get("type")
                    )

    def resync(self, members: list[ChannelQueue], epoch: int) -> None:
        """Messages may have been lost meanwhile; as with any Channels layer, they stay lost."""

    def __repr__(self) -> str:
        return "consumers"


QUEUES = _QueueKind()
ChannelQueue.kind = QUEUES


class PulseLoopLayer:
    """The layer's state in one event loop: its hub and its consumers' channels."""

    def __init__(self, outer: PulseChannelLayer, loop: asyncio.AbstractEventLoop) -> None:
        self.outer = outer
        self.hub = Hub(loop, outer.deserialize)
        self.channels: dict[str, ChannelQueue] = {}

    async def channel(self, name: str) -> ChannelQueue:
        found = self.channels.get(name)
        if found is None:
            found = self.channels[name] = ChannelQueue(name, self.outer.capacity)
            await self.hub.join(found, [name])
        return found

    def drop(self, name: str) -> None:
        found = self.channels.pop(name, None)
        if found is not None:
            self.hub.leave(found)


class PulseChannelLayer(RedisPubSubChannelLayer):
    """A Channels layer (`realtime.layer.PulseChannelLayer` in CHANNEL_LAYERS)."""

    extensions = ["groups", "flush"]

    def __init__(
        self,
        prefix: str = "asgi",
        capacity: int = DEFAULT_CAPACITY,
        hosts: Any = None,
        **kwargs: Any,
    ) -> None:
        if hosts is not None:
            raise ImproperlyConfigured(
                "PulseChannelLayer uses REDIS_URL (or REDIS_SENTINELS); remove `hosts` from "
                "CHANNEL_LAYERS CONFIG"
            )
        super().__init__(**kwargs)
        self.prefix = prefix
        self.capacity = capacity
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, PulseLoopLayer] = (
            weakref.WeakKeyDictionary()
        )

    # -- per event loop -------------------------------------------------------------------

    def _get_layer(self) -> PulseLoopLayer:
        loop = asyncio.get_running_loop()
        layer = self._loops.get(loop)
        if layer is None:
            layer = self._loops[loop] = PulseLoopLayer(self, loop)
        return layer

    def hub(self) -> Hub:
        """This event loop's hub (Pulse's own sockets and streams join it)."""
        return self._get_layer().hub

    def hubs(self) -> tuple[Hub, ...]:
        """Every hub of this process (gauges read them from other threads)."""
        return tuple(layer.hub for layer in tuple(self._loops.values()))

    def group_channel(self, group: str) -> str:
        """The Redis channel of a group (channels-redis's pub/sub layer names it the same)."""
        return f"{self.prefix}__group__{group}"

    # -- the Channels layer API -----------------------------------------------------------

    async def new_channel(self, prefix: str = "specific.") -> str:
        name = f"{self.prefix}{prefix}{uuid.uuid4().hex}"
        await self._get_layer().channel(name)
        return name

    async def send(self, channel: str, message: dict[str, Any]) -> None:
        await async_publisher().publish(channel, self.serialize(message))

    async def receive(self, channel: str) -> dict[str, Any]:
        layer = self._get_layer()
        queue = (await layer.channel(channel)).queue
        try:
            return await queue.get()
        except (asyncio.CancelledError, GeneratorExit):
            # As in channels-redis: a cancelled receive means the consumer is ending.
            layer.drop(channel)
            raise

    async def group_add(self, group: str, channel: str) -> None:
        _check_group(group)
        layer = self._get_layer()
        member = layer.channels.get(channel)
        if member is None:
            raise RuntimeError(
                "You can only call group_add() on channels that exist in-process.\n"
                "Consumers are encouraged to use the common pattern:\n"
                f"   self.channel_layer.group_add({group!r}, self.channel_name)"
            )
        await layer.hub.join(member, [self.group_channel(group)])

    async def group_discard(self, group: str, channel: str) -> None:
        layer = self._get_layer()
        member = layer.channels.get(channel)
        if member is not None:
            layer.hub.leave(member, [self.group_channel(group)])

    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        _check_group(group)
        await async_publisher().publish(self.group_channel(group), self.serialize(message))

    async def flush(self) -> None:
        layer = self._get_layer()
        for name in list(layer.channels):
            layer.drop(name)

    # -- Pulse's extensions ---------------------------------------------------------------

    async def group_send_many(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> None:
        """group_send several (group, message) pairs in one round trip, in order."""
        encoded = [(self.group_channel(g), self.serialize(m)) for g, m in messages]
        if encoded:
            async with async_publisher().pipeline(transaction=False) as pipe:
                for channel, data in encoded:
                    pipe.publish(channel, data)
                await pipe.execute()

    def publish_sync(self, messages: Iterable[tuple[str, dict[str, Any]]]) -> bool:
        """group_send (group, message) pairs from synchronous code in one round trip, in
        order; False (logged) if Redis failed. For on-commit callbacks and commands: the
        rows are stored, so callers recover a failed publish from storage."""
        encoded = [(self.group_channel(g), self.serialize(m)) for g, m in messages]
        if not encoded:
            return True
        try:
            if len(encoded) == 1:
                publisher().publish(*encoded[0])
            else:
                with publisher().pipeline(transaction=False) as pipe:
                    for channel, data in encoded:
                        pipe.publish(channel, data)
                    pipe.execute()
        except (redis.RedisError, OSError) as exc:
            logger.warning("live publish failed (%d messages): %s", len(encoded), exc)
            metrics.PUBLISH_FAILURES.inc(len(encoded))
            return False
        return True


def _check_group(group: str) -> None:
    if not isinstance(group, str) or not GROUP_NAME.fullmatch(group):
        raise TypeError(
            f"group name {group!r} is not valid: ASCII letters, digits, '-', '_' or '.', "
            "shorter than 100 characters"
        )


def pulse_layer() -> PulseChannelLayer:
    """The default channel layer, which Pulse's delivery needs to be its own."""
    layer = get_channel_layer()
    if not isinstance(layer, PulseChannelLayer):
        raise ImproperlyConfigured(
            "CHANNEL_LAYERS['default'] must use realtime.layer.PulseChannelLayer "
            f"(it is {type(layer).__name__})"
        )
    return layer
