"""Sliding-window limits for async code: the `limits` library's moving window on Redis.

The asyncio face of what feeds.ratelimit does for views (the same library, strategy and
`chat:limits` key prefix), so a WebSocket consumer can count hits without blocking its
event loop. Hits are counted in Redis, so every tab and server process shares a window.
Redis being down lets hits through: a limit protects the service, it must not stop it.
"""

from __future__ import annotations

import logging
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings
from limits import RateLimitItem
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from realtime import metrics
from realtime.redis_state import async_client, key

logger = logging.getLogger(__name__)

# One limiter per async client, that is per event loop (redis_state.async_client).
_limiters: weakref.WeakKeyDictionary[aioredis.Redis, MovingWindowRateLimiter] = (
    weakref.WeakKeyDictionary()
)


def _storage_uri() -> str:
    # limits only checks the scheme: the connections come from the client's own pool.
    return "async+" + settings.REDIS_URL.replace("unix://", "redis+unix://", 1)


def _limiter() -> MovingWindowRateLimiter:
    client = async_client()
    limiter = _limiters.get(client)
    if limiter is None:
        storage = RedisStorage(
            _storage_uri(),
            implementation="redispy",
            connection_pool=client.connection_pool,
            key_prefix=key("limits"),
        )
        limiter = _limiters[client] = MovingWindowRateLimiter(storage)
    return limiter


async def hit(item: RateLimitItem, *identifiers: object) -> bool:
    """Count one hit against `item` for `identifiers` (the first names the limit, as the
    `limit` label of pulse_rate_limited_total); False once the window is full."""
    try:
        allowed = await _limiter().hit(item, *(str(i) for i in identifiers))
    except (redis.RedisError, OSError) as exc:
        logger.warning("%s limit unavailable, allowing: %s", identifiers[0], exc)
        return True
    if not allowed:
        # The first identifier names the limit (a constant in the caller's code).
        metrics.RATE_LIMITED.labels(str(identifiers[0])).inc()
    return allowed
