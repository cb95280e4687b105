"""How often a user may send chat frames or act, counted in Redis across processes and tabs.

A token bucket per user: BUCKET_SIZE frames at once, refilled at REFILL_PER_SECOND
(a `typing` frame costs a quarter, see feeds.protocol.cost). Far above a person's pace,
far below a script's. Each refused frame is a strike; FLOOD_STRIKES strikes within
FLOOD_WINDOW_MS mean a sustained flood, and the connection is closed. Redis being down
lets frames through: the limit protects the service, it must not stop it.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

import redis
from django.conf import settings
from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from realtime import metrics
from realtime.redis_state import async_client, key, run_script, sync_client

logger = logging.getLogger(__name__)

BUCKET_SIZE = 30
REFILL_PER_SECOND = 5
FLOOD_STRIKES = 20
FLOOD_WINDOW_MS = 10_000
TYPING_INTERVAL_MS = 2_000

# KEYS: bucket, strikes. ARGV: size, refill per ms, cost, flood window.
# Returns {allowed (1/0), strikes in the current window}.
_SPEND = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local size = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or size
local at = tonumber(state[2]) or now
if now > at then
  tokens = math.min(size, tokens + (now - at) * rate)
  at = now
end
local allowed = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('PEXPIRE', KEYS[1], math.ceil(size / rate) + 1000)
if allowed == 1 then return {1, 0} end
local strikes = redis.call('INCR', KEYS[2])
if strikes == 1 then redis.call('PEXPIRE', KEYS[2], ARGV[4]) end
return {0, strikes}
"""


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    flood: bool = False


ALLOW = Verdict(allowed=True)

# Refusals by limit (pulse_rate_limited_total), made now so that each shows from the start.
_REFUSED = {
    name: metrics.RATE_LIMITED.labels(name) for name in ("chat-frames", "rooms", "mentions")
}


async def frame_verdict(*, user_id: int, cost: float) -> Verdict:
    """Spend `cost` tokens of the user's bucket; refuse, and call it a flood when sustained."""
    try:
        allowed, strikes = await run_script(
            _SPEND,
            [key("rate", user_id), key("flood", user_id)],
            [BUCKET_SIZE, REFILL_PER_SECOND / 1000, cost, FLOOD_WINDOW_MS],
        )
    except (redis.RedisError, OSError) as exc:
        logger.warning("rate limit check for user %s failed, allowing: %s", user_id, exc)
        return ALLOW
    if allowed:
        return ALLOW
    _REFUSED["chat-frames"].inc()
    return Verdict(allowed=False, flood=strikes >= FLOOD_STRIKES)


async def _once_per(name: str, room_id: int, user_id: int, interval_ms: int) -> bool:
    try:
        return bool(
            await async_client().set(key(name, room_id, user_id), "1", nx=True, px=interval_ms)
        )
    except (redis.RedisError, OSError) as exc:
        logger.warning("%s throttle for user %s failed: %s", name, user_id, exc)
        return False


async def typing_allowed(*, room_id: int, user_id: int) -> bool:
    """At most one `typing` announcement per user and room every TYPING_INTERVAL_MS."""
    return await _once_per("typing", room_id, user_id, TYPING_INTERVAL_MS)


# chat.js sends a `read` frame at most once a second per room, so a well-behaved tab never
# meets this; a client that floods them gets its marker moved twice a second at most.
READ_INTERVAL_MS = 500


async def read_allowed(*, room_id: int, user_id: int) -> bool:
    """At most one read-marker move per user and room every READ_INTERVAL_MS."""
    return await _once_per("read", room_id, user_id, READ_INTERVAL_MS)


# Sliding-window limits on actions (room creation, mentions) come from the maintained
# `limits` library, its moving window on Redis: a sorted record of each hit, so a burst
# straddling a clock boundary still counts as one window (a clock-aligned counter let 7
# rooms through in 218 s). The frame budget above stays a script of its own: `limits` has
# no token bucket with fractional costs, no strike counter and no asyncio client here.
_limiter: MovingWindowRateLimiter | None = None
_limiter_lock = threading.Lock()


def _moving_window() -> MovingWindowRateLimiter:
    global _limiter
    with _limiter_lock:
        if _limiter is None:
            # The views' client's pool, so Redis has one client per process, and keys
            # under `chat:` with the rest of this state.
            storage = RedisStorage(
                settings.REDIS_URL.replace("unix://", "redis+unix://", 1),
                connection_pool=sync_client().connection_pool,
                key_prefix=key("limits"),
            )
            _limiter = MovingWindowRateLimiter(storage)
        return _limiter


def _hit(item: RateLimitItem, *identifiers: object) -> bool:
    try:
        allowed = _moving_window().hit(item, *(str(i) for i in identifiers))
    except (redis.RedisError, OSError) as exc:
        logger.warning("%s limit unavailable, allowing: %s", identifiers[0], exc)
        return True
    if not allowed:
        _REFUSED[str(identifiers[0])].inc()
    return allowed


# Rooms a user may create from the chat page in any ROOM_WINDOW_SECONDS: plenty for a
# person, and a script cannot fill the room list.
ROOMS_PER_WINDOW = 5
ROOM_WINDOW_SECONDS = 600


def room_create_allowed(*, user_id: int) -> bool:
    """Count one room creation by the user; False past ROOMS_PER_WINDOW in the last window."""
    return _hit(RateLimitItemPerSecond(ROOMS_PER_WINDOW, ROOM_WINDOW_SECONDS), "rooms", user_id)


# One mention notification per sender and target in this many seconds: ten quick messages
# to @bob are one notification, which leads bob to the room where the rest are.
MENTION_INTERVAL_SECONDS = 60


def mention_allowed(*, sender_id: int, target_id: int) -> bool:
    """Count a mention notification from sender to target; False if one went out lately."""
    item = RateLimitItemPerSecond(1, MENTION_INTERVAL_SECONDS)
    return _hit(item, "mentions", sender_id, target_id)
