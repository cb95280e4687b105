"""Redis clients for state shared by every server process (presence, rate limits, caps).

Beside pub/sub (the channel layer), this is the other use of Redis: small keys and Lua
scripts that must see every process's connections at once. The clients come from
realtime.redis_clients. Keys keep the `chat:` prefix they were created with.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from realtime.redis_clients import async_client, close_loop_clients, sync_client

__all__ = ["KEY_PREFIX", "async_client", "close_async_client", "key", "run_script", "sync_client"]

KEY_PREFIX = "chat:"

_async_scripts: weakref.WeakKeyDictionary[aioredis.Redis, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)


def key(*parts: object) -> str:
    """A chat key: `chat:presence:7`, `chat:rate:42`."""
    return KEY_PREFIX + ":".join(str(part) for part in parts)


async def run_script(source: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
    """Run a Lua script with EVALSHA (loading it on first use) on this loop's client."""
    client = async_client()
    scripts = _async_scripts.setdefault(client, {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return await script(keys=list(keys), args=list(args))


async def close_async_client() -> None:
    """Close this loop's clients (tests, whose loops end after each test)."""
    await close_loop_clients()
