"""Redis clients for state shared by every server process (presence, rate limits, caps).

Beside pub/sub (the relay and the chat fan-out), this is the other use of Redis: small
keys and Lua scripts that must see every process's connections at once. One async client
per event loop (a redis.asyncio connection belongs to the loop that opened it) and one
thread-safe sync client for views. Keys keep the `chat:` prefix they were created with.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

KEY_PREFIX = "chat:"
# Short, unlike the channel layer's blocking reads: every command here answers at once.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
_async_scripts: weakref.WeakKeyDictionary[aioredis.Redis, dict[str, Any]] = (
    weakref.WeakKeyDictionary()
)
_sync_client: redis.Redis | None = None
_sync_lock = threading.Lock()


def key(*parts: object) -> str:
    """A chat key: `chat:presence:7`, `chat:rate:42`."""
    return KEY_PREFIX + ":".join(str(part) for part in parts)


def async_client() -> aioredis.Redis:
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        client = aioredis.Redis.from_url(
            settings.REDIS_URL,
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            decode_responses=True,
        )
        _async_clients[loop] = client
    return client


async def run_script(source: str, keys: Sequence[str], args: Sequence[Any] = ()) -> Any:
    """Run a Lua script with EVALSHA (loading it on first use) on this loop's client."""
    client = async_client()
    scripts = _async_scripts.setdefault(client, {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return await script(keys=list(keys), args=list(args))


async def close_async_client() -> None:
    """Close this loop's client (tests, whose loops end after each test)."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def sync_client() -> redis.Redis:
    global _sync_client
    with _sync_lock:
        if _sync_client is None:
            _sync_client = redis.Redis.from_url(
                settings.REDIS_URL,
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT,
                decode_responses=True,
            )
        return _sync_client
