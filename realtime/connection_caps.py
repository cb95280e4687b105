"""How many live connections one user may hold, counted in Redis across server processes.

Each open connection is one member (a random id) of the sorted set
`chat:conns:<kind>:<user id>`, scored by when it expires. Opening one prunes expired
members and adds itself only under the cap, in one script: one round trip per connect.
Live connections refresh their expiry in one batch per process (chat sockets with their
presence heartbeat, SSE streams with the keep-alive), and closing removes the member, so
a server process that dies (SIGKILL, power loss) frees its users' slots within TTL_MS
instead of locking them out for good. Redis being down lets connections through: the
cap protects the service, it must not stop it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

import redis
from django.conf import settings
from redis.commands.core import Script

from realtime.redis_state import async_client, key, run_per_key, run_script, sync_client

logger = logging.getLogger(__name__)

SSE, CHAT = "sse", "chat"
# Three refresh periods (SSE 20 s, chat heartbeat at most 20 s): a slow beat never drops
# a live connection, a dead process's slots are free within a minute.
TTL_MS = 60_000

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


def acquire(*, kind: str, user_id: int, conn_id: str) -> bool:
    """Count a new connection of the user (from a view's thread); False over the cap."""
    global _sync_acquire
    try:
        if _sync_acquire is None:
            _sync_acquire = sync_client().register_script(_ACQUIRE)
        return bool(_sync_acquire(keys=[_key(kind, user_id)], args=[conn_id, cap(kind), TTL_MS]))
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap for user %s unavailable, allowing: %s", user_id, exc)
        return True


async def acquire_async(*, kind: str, user_id: int, conn_id: str) -> bool:
    """`acquire` for the event loop."""
    try:
        args = [conn_id, cap(kind), TTL_MS]
        return bool(await run_script(_ACQUIRE, [_key(kind, user_id)], args))
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap for user %s unavailable, allowing: %s", user_id, exc)
        return True


async def refresh(*, kind: str, connections: Iterable[tuple[int, str]]) -> None:
    """Keep these (user id, connection id) counted for another TTL_MS, in one round trip."""
    by_key: dict[str, list[str]] = {}
    for user_id, conn_id in connections:
        by_key.setdefault(_key(kind, user_id), []).append(conn_id)
    try:
        await run_per_key(_REFRESH, by_key, [TTL_MS])
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap refresh failed (entries expire): %s", exc)


async def release(*, kind: str, user_id: int, conn_id: str) -> None:
    """Stop counting a closed connection (else it expires after TTL_MS)."""
    try:
        await async_client().zrem(_key(kind, user_id), conn_id)
    except (redis.RedisError, OSError) as exc:
        logger.warning("connection cap release for user %s failed (it expires): %s", user_id, exc)
