"""Who is in which room, kept in Redis so every server process and every tab agrees.

Each open connection is one member `username|channel_name` of the sorted set
`chat:presence:<room>`, scored by when it expires; connections refresh their score
with a heartbeat (one batch per process, feeds.heartbeat), so a crashed process's
connections age out on their own. A user is
online while any of their connections is: closing one of two tabs changes nothing.

Changes are announced as diffs against `chat:presence:<room>:announced` (the set the
room was last told about), at most one frame per room per FLUSH_INTERVAL: the first
change takes a `pending` lock and schedules the flush; changes made while it waits
ride along. The flush script drops the lock in the same atomic step that reads the
set, so a change is either seen by that flush or schedules the next one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from typing import Any

import redis

from feeds import events
from realtime.redis_state import async_client, key, run_per_key, run_script, sync_client

logger = logging.getLogger(__name__)

TTL_MS = 60_000
HEARTBEAT_SECONDS = 20.0
FLUSH_INTERVAL_MS = 1_000
# The first change waits this long too, so a burst of joins becomes one frame.
COALESCE_MS = 100
# If the process holding the lock dies, the next change after this takes over.
PENDING_TTL_MS = 5_000
ANNOUNCED_TTL_MS = 86_400_000

_NOW = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "


def _touch_step(connections: str, member: str, ttl: str) -> str:
    """Lua: prune expired entries, (re)count `member` until now + ttl; sets added, removed."""
    return f"""
local removed = redis.call('ZREMRANGEBYSCORE', {connections}, '-inf', now)
local added = redis.call('ZADD', {connections}, now + tonumber({ttl}), {member})
redis.call('PEXPIRE', {connections}, 2 * tonumber({ttl}))
"""


def _request_step(pending: str, flushed: str, interval: str, pending_ttl: str) -> str:
    """Lua: take the pending lock; sets delay, the ms until the flush may run (-1 when a
    flush is already scheduled)."""
    return f"""
local delay = -1
if redis.call('SET', {pending}, '1', 'NX', 'PX', {pending_ttl}) then
  local last = tonumber(redis.call('GET', {flushed}) or '0')
  delay = math.max(0, last + tonumber({interval}) - now)
end
"""


# KEYS: rooms' connections. ARGV: ttl, then for each key its member count and members
# (realtime.redis_state.run_per_key). Returns for each key 1 if a member was (re)added or
# expired entries were removed (the room's diff may have changed), else 0.
_TOUCH_MANY = (
    _NOW
    + """
local ttl = tonumber(ARGV[1])
local changed = {}
local at = 2
for i, name in ipairs(KEYS) do
  local count = tonumber(ARGV[at])
  local removed = redis.call('ZREMRANGEBYSCORE', name, '-inf', now)
  local added = 0
  for j = at + 1, at + count do
    added = added + redis.call('ZADD', name, now + ttl, ARGV[j])
  end
  redis.call('PEXPIRE', name, 2 * ttl)
  if added + removed > 0 then changed[i] = 1 else changed[i] = 0 end
  at = at + count + 1
end
return changed
"""
)

# KEYS: pending, flushed. ARGV: interval, pending ttl. Returns the delay in ms, or -1
# when a flush is already scheduled.
_REQUEST = _NOW + _request_step("KEYS[1]", "KEYS[2]", "ARGV[1]", "ARGV[2]") + "return delay"

# KEYS: connections, announced, pending, flushed. ARGV: member, ttl, interval, pending ttl,
# "1" to read the announced set. A touch and a flush request in one step, for a connect:
# returns {the delay (as _REQUEST's), the announced set or {}}.
_ENTER = (
    _NOW
    + _touch_step("KEYS[1]", "ARGV[1]", "ARGV[2]")
    + _request_step("KEYS[3]", "KEYS[4]", "ARGV[3]", "ARGV[4]")
    + """
if ARGV[5] ~= '1' then return {delay, {}} end
return {delay, redis.call('SMEMBERS', KEYS[2])}
"""
)

# KEYS: connections. Returns the members that have not expired.
_LIVE = _NOW + "return redis.call('ZRANGEBYSCORE', KEYS[1], now, '+inf')"

# KEYS: connections, announced, pending, flushed. ARGV: announced ttl, flushed ttl.
# Returns {joined, left}.
_FLUSH = (
    _NOW
    + """
redis.call('DEL', KEYS[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local online = {}
for _, member in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local name = string.match(member, '^(.-)|')
  if name then online[name] = true end
end
local before = {}
local left = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[2])) do
  before[name] = true
  if not online[name] then table.insert(left, name) end
end
local joined = {}
local names = {}
for name, _ in pairs(online) do
  table.insert(names, name)
  if not before[name] then table.insert(joined, name) end
end
redis.call('DEL', KEYS[2])
if #names > 0 then
  redis.call('SADD', KEYS[2], unpack(names))
  redis.call('PEXPIRE', KEYS[2], ARGV[1])
end
redis.call('SET', KEYS[4], now, 'PX', ARGV[2])
return {joined, left}
"""
)

_tasks: set[asyncio.Task[None]] = set()


def _keys(room_id: int) -> tuple[str, str, str, str]:
    base = key("presence", room_id)
    return base, f"{base}:announced", f"{base}:pending", f"{base}:flushed"


def _member(username: str, conn_id: str) -> str:
    # `|` cannot occur in a Django username, so the first one ends the name.
    return f"{username}|{conn_id}"


def _usernames(members: list[str]) -> list[str]:
    return sorted({member.partition("|")[0] for member in members})


async def enter(
    *, room_id: int, username: str, conn_id: str, read_announced: bool = True
) -> list[str]:
    """Count this connection in the room, schedule the room's `joined` diff, and return
    the usernames the room was last told are online, sorted, in one round trip.

    That set is the baseline of the next diff, and what a welcome lists, not the live
    connections: someone who joins and leaves between two flushes is in neither diff, so a
    welcome listing them would keep them forever.

    `read_announced=False` skips the set (a caller that has it already): in a room of
    thousands, reading it is most of a connect's Redis work."""
    flag = "1" if read_announced else "0"
    try:
        delay_ms, names = await run_script(
            _ENTER,
            _keys(room_id),
            [_member(username, conn_id), TTL_MS, FLUSH_INTERVAL_MS, PENDING_TTL_MS, flag],
        )
    except (redis.RedisError, OSError) as exc:
        logger.warning("presence update for room %s failed: %s", room_id, exc)
        return []
    _schedule_flush(room_id, int(delay_ms))
    return sorted(names)


async def heartbeat(*, room_id: int, username: str, conn_id: str) -> None:
    """Keep this connection counted; announce if it had expired or others did."""
    await heartbeat_many([(room_id, username, conn_id)])


async def heartbeat_many(connections: Iterable[tuple[int, str, str]]) -> None:
    """`heartbeat` for many (room id, username, connection id) across rooms: a process's
    chat sockets, in one script per SCRIPT_BATCH members instead of one per socket."""
    by_room: dict[int, list[str]] = {}
    for room_id, username, conn_id in connections:
        by_room.setdefault(room_id, []).append(_member(username, conn_id))
    rooms = list(by_room)
    try:
        results = await run_per_key(_TOUCH_MANY, {_keys(r)[0]: by_room[r] for r in rooms}, [TTL_MS])
        changed = [flag for result in results for flag in result]
        for room_id, flag in zip(rooms, changed, strict=True):
            if flag:
                await _request_flush(room_id)
    except (redis.RedisError, OSError) as exc:
        logger.warning("presence heartbeat for %s rooms failed: %s", len(rooms), exc)


async def leave(*, room_id: int, username: str, conn_id: str) -> None:
    """Stop counting this connection and schedule the room's `left` diff."""
    try:
        await async_client().zrem(_keys(room_id)[0], _member(username, conn_id))
        await _request_flush(room_id)
    except (redis.RedisError, OSError) as exc:
        # The entry expires by itself; the next change in the room announces it.
        logger.warning("presence leave for room %s failed: %s", room_id, exc)


async def online(*, room_id: int) -> list[str]:
    """Usernames with at least one live connection in the room, sorted."""
    try:
        return _usernames(await run_script(_LIVE, [_keys(room_id)[0]]))
    except (redis.RedisError, OSError) as exc:
        logger.warning("presence read for room %s failed: %s", room_id, exc)
        return []


def online_counts(room_ids: list[int]) -> dict[int, int]:
    """How many people are in each room (for listings; a sync client for views)."""
    if not room_ids:
        return {}
    try:
        client = sync_client()
        seconds, micros = client.time()
        now = seconds * 1000 + micros // 1000
        with client.pipeline(transaction=False) as pipe:
            for room_id in room_ids:
                pipe.zrangebyscore(_keys(room_id)[0], now, "+inf")
            results = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        logger.warning("presence counts failed: %s", exc)
        return {}
    return {
        room_id: len(_usernames(members))
        for room_id, members in zip(room_ids, results, strict=True)
    }


async def _request_flush(room_id: int) -> None:
    _, _, pending, flushed = _keys(room_id)
    delay_ms = await run_script(_REQUEST, [pending, flushed], [FLUSH_INTERVAL_MS, PENDING_TTL_MS])
    _schedule_flush(room_id, int(delay_ms))


def _schedule_flush(room_id: int, delay_ms: int) -> None:
    if delay_ms >= 0:
        _spawn(_flush_later(room_id, max(delay_ms, COALESCE_MS) / 1000))


async def _flush_later(room_id: int, delay: float) -> None:
    await asyncio.sleep(delay)
    try:
        joined, left = await run_script(_FLUSH, _keys(room_id), [ANNOUNCED_TTL_MS, TTL_MS])
        if joined or left:
            await events.presence_broadcast(
                room_id=room_id, joined=sorted(joined), left=sorted(left)
            )
    except (redis.RedisError, OSError) as exc:
        # The pending lock is gone or expires: the room's next change announces the diff.
        logger.warning("presence flush for room %s failed: %s", room_id, exc)


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    # The flush outlives the connection that asked for it (a leave, typically).
    task = asyncio.get_running_loop().create_task(coro)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def settle(*, cancel: bool = False) -> None:
    """Wait for this loop's scheduled flushes, or cancel them (tests end their loop after
    each test; one that made diffs wait seconds has no use for them)."""
    loop = asyncio.get_running_loop()
    while pending := [t for t in _tasks if t.get_loop() is loop and not t.done()]:
        if cancel:
            for task in pending:
                task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
