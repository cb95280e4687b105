"""How many live connections one user may hold, counted in Redis across server processes.

Each open connection is one member (a random id) of the sorted set
`chat:conns:<kind>:<user id>`, scored by when it expires. Opening one prunes expired
members and adds itself only under the cap, in one script: one round trip per connect.
Live connections refresh their expiry in one batch per process (chat sockets with their
presence heartbeat, SSE streams with the keep-alive), and closing removes the member, so
a server process that dies (SIGKILL, power loss) frees its users' slots within TTL_MS
instead of locking them out for good. Redis being down lets connections through: the
cap protects the service, it must not stop it.

The same three moments (open, refresh, close) of an SSE stream also record when the user
last held a live stream, `chat:live:<user id>` (milliseconds since the epoch): anything
published to the user before that moment reached an open page, live or by its catch-up.
The email worker reads it (`last_live_ms`) to leave alone what was seen live; it costs one
key write per stream per keep-alive, nothing per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable

import redis
from django.conf import settings
from redis.commands.core import Script

from realtime.redis_state import async_client, key, run_per_key, run_script, sync_client

logger = logging.getLogger(__name__)

SSE, CHAT = "sse", "chat"
# Three refresh periods (SSE 20 s, chat heartbeat at most 20 s): a slow beat never drops
# a live connection, a dead process's slots are free within a minute.
TTL_MS = 60_000
# How long the last-live moment is kept: longer than any email delay.
LIVE_TTL_MS = 7 * 24 * 3600 * 1000

# KEYS: the user's connections. ARGV: member, cap, ttl. Returns 1 if counted, 0 if full.
_ACQUIRE = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""

# KEYS: the users' connection sets. ARGV: ttl, then for each key its member count and
# members. Re-adds members a Redis restart lost, so the count stays true.
_REFRESH = """
local t = redis.call('TIME')
local expires = t[1] * 1000 + math.floor(t[2] / 1000) + tonumber(ARGV[1])
local at = 2
for _, name in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  for i = at + 1, at + count do redis.call('ZADD', name, expires, ARGV[i]) end
  redis.call('PEXPIRE', name, ARGV[1])
  at = at + count + 1
end
return 1
"""


_sync_acquire: Script | None = None


def cap(kind: str) -> int:
    return settings.SSE_STREAMS_PER_USER if kind == SSE else settings.CHAT_SOCKETS_PER_USER


def _key(kind: str, user_id: int) -> str:
    return key("conns", kind, user_id)


def _live_key(user_id: int) -> str:
    return key("live", user_id)


def _now_ms() -> int:
    return int(time.time() * 1000)


def acquire(*, kind: str, user_id: int, conn_id: str) -> bool:
    """Count a new connection of the user (from a view's thread); False over the cap."""
    global _sync_acquire
    try:
        if _sync_acquire is None:
            _sync_acquire = sync_client().register_script(_ACQUIRE)
        args = [conn_id, cap(kind), TTL_MS]
        counted = bool(_sync_acquire(keys=[_key(kind, user_id)], args=args))
        if counted and kind == SSE:
            sync_client().set(_live_key(user_id), _now_ms(), px=LIVE_TTL_MS)
        return counted
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap for user %s unavailable, allowing: %s", user_id, exc)
        return True


async def acquire_async(*, kind: str, user_id: int, conn_id: str) -> bool:
    """`acquire` for the event loop."""
    try:
        args = [conn_id, cap(kind), TTL_MS]
        counted = bool(await run_script(_ACQUIRE, [_key(kind, user_id)], args))
        if counted and kind == SSE:
            await async_client().set(_live_key(user_id), _now_ms(), px=LIVE_TTL_MS)
        return counted
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap for user %s unavailable, allowing: %s", user_id, exc)
        return True


async def refresh(*, kind: str, connections: Iterable[tuple[int, str]]) -> None:
    """Keep these (user id, connection id) counted for another TTL_MS, in one round trip."""
    by_key: dict[str, list[str]] = {}
    user_ids = set()
    for user_id, conn_id in connections:
        by_key.setdefault(_key(kind, user_id), []).append(conn_id)
        user_ids.add(user_id)
    try:
        await run_per_key(_REFRESH, by_key, [TTL_MS])
        if kind == SSE:
            await _mark_live(user_ids)
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap refresh failed (entries expire): %s", exc)


async def release(*, kind: str, user_id: int, conn_id: str) -> None:
    """Stop counting a closed connection (else it expires after TTL_MS)."""
    try:
        await async_client().zrem(_key(kind, user_id), conn_id)
        if kind == SSE:
            await _mark_live({user_id})
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap release for user %s failed (it expires): %s", user_id, exc)


async def _mark_live(user_ids: Collection[int]) -> None:
    now = _now_ms()
    async with async_client().pipeline(transaction=False) as pipe:
        for user_id in user_ids:
            pipe.set(_live_key(user_id), now, px=LIVE_TTL_MS)
        await pipe.execute()


def last_live_ms(*, user_ids: Collection[int]) -> dict[int, int]:
    """When each user last held a live SSE stream (ms since the epoch); absent: not lately.

    Redis being down reads as "not live": an email too many beats a missed one.
    """
    ids = list(user_ids)
    if not ids:
        return {}
    try:
        values = sync_client().mget([_live_key(user_id) for user_id in ids])
    except (redis.RedisError, OSError) as exc:
        logger.warning("last-live moments unavailable, treating users as away: %s", exc)
        return {}
    return {user_id: int(v) for user_id, v in zip(ids, values, strict=True) if v is not None}
