"""Latest-value channels: a price, a score, a gauge. Only the newest value counts.

Each publish takes the channel's next sequence number and stores the value under it in
Redis in one script, so ids grow in the order values were stored, whichever process
published them. The event goes out with that id and `prev` 0 ("no gap can exist"): a
stream drops any value at or below what it has (realtime.sse), a stream that opens or
comes back reads the latest value instead of a history, and a stream that falls behind
replaces its unsent value of a channel with the newer one instead of queueing both.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from redis.commands.core import Script

from realtime.redis_clients import async_client, sync_client
from realtime.redis_state import run_script

KEY_PREFIX = "pulse:latest:"
# How long a value outlives its last publish: a channel nobody publishes to any more
# should not keep its value forever.
TTL_SECONDS = 7 * 24 * 3600

# Returns the new sequence number; the value is stored with it, atomically.
_STORE = """
local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
redis.call('HSET', KEYS[1], 'value', ARGV[1], 'at', seq)
redis.call('EXPIRE', KEYS[1], ARGV[2])
return seq
"""


def _key(channel: str) -> str:
    return KEY_PREFIX + channel


def _pack(event_type: str, data: str) -> str:
    return json.dumps([event_type, data])


_sync_store: Script | None = None
_sync_lock = threading.Lock()


def store(channel: str, event_type: str, data: str) -> int:
    """Keep this as the channel's latest value; its id (sync code)."""
    global _sync_store
    with _sync_lock:
        if _sync_store is None:  # registered once: EVALSHA from then on
            _sync_store = sync_client().register_script(_STORE)
    return int(_sync_store(keys=[_key(channel)], args=[_pack(event_type, data), TTL_SECONDS]))


async def astore(channel: str, event_type: str, data: str) -> int:
    """Keep this as the channel's latest value; its id (async code)."""
    args = [_pack(event_type, data), TTL_SECONDS]
    return int(await run_script(_STORE, [_key(channel)], args))


def read(channels: list[str]) -> dict[str, tuple[int, str, str]]:
    """The latest (id, event type, data) of each channel that has one (sync code)."""
    if not channels:
        return {}
    client = sync_client()
    with client.pipeline(transaction=False) as pipe:
        for channel in channels:
            pipe.hmget(_key(channel), "at", "value")
        rows = pipe.execute()
    return {channel: _row(row) for channel, row in zip(channels, rows, strict=True) if row[0]}


async def aread(channels: list[str]) -> dict[str, tuple[int, str, str]]:
    """The latest (id, event type, data) of each channel that has one (async code)."""
    if not channels:
        return {}
    async with async_client().pipeline(transaction=False) as pipe:
        for channel in channels:
            pipe.hmget(_key(channel), "at", "value")
        rows = await pipe.execute()
    return {channel: _row(row) for channel, row in zip(channels, rows, strict=True) if row[0]}


def _row(row: list[Any]) -> tuple[int, str, str]:
    at, value = row
    event_type, data = json.loads(value)
    return int(at), event_type, data
