"""The one place Redis clients are made: every use of Redis in Pulse gets its client here.

Three shapes, for three jobs:
- `sync_client()`: one thread-safe client for views, services and management commands
  (state keys, Lua scripts; replies decoded to str).
- `async_client()`: one per event loop for consumers and hubs (a redis.asyncio connection
  belongs to the loop that opened it; replies decoded to str).
- `publisher()` / `async_publisher()`: raw bytes for the channel layer's PUBLISH. The sync
  one retries only briefly: publishing after commit must not stall its caller while Redis
  is away (on-commit callbacks run in the thread every database call of a process shares).
- `subscriber_client(name)`: a fresh connection for one pub/sub session, with no silent
  reconnects: whoever holds it must learn that it broke, to resync what it missed.
- `probe_client()`: a throwaway client that answers fast or fails fast (the checks at
  start and `/readyz`, realtime.probes); a malformed REDIS_URL raises ValueError here.

Each is a client of REDIS_URL, or with Sentinel configured (settings.REDIS_SENTINEL) of
the primary the sentinels name: redis-py asks them where it is before each new
connection, so after a failover reconnecting is all it takes to follow the new primary.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import types
import weakref
from typing import Any

import redis
import redis.asyncio as aioredis
import redis.asyncio.sentinel
import redis.sentinel
from django.conf import settings
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

# Short, unlike a blocking read: every command sent through these answers at once.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
PUBLISH_TIMEOUT = 2.0
# Sentinels answer at once or are down: asking the next one beats waiting.
SENTINEL_TIMEOUT = 1.0

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
_async_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
_async_sentinels: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, redis.asyncio.sentinel.Sentinel
] = weakref.WeakKeyDictionary()
_sync: dict[str, redis.Redis] = {}
_sync_sentinel: list[redis.sentinel.Sentinel] = []  # at most one, made on first use
_sync_lock = threading.Lock()


def redis_url() -> str:
    return settings.REDIS_URL


def _sentinel_options(retry: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the sentinels' own client options, what master_for() adds to each client's).

    `retry`: none, of the right kind (sync or asyncio). redis-py's default for the
    sentinels' clients retries thrice with backoff: one sentinel that is down would hold
    up every lookup for seconds, where asking the next one is the retry."""
    config = settings.REDIS_SENTINEL
    asking = {
        "socket_timeout": SENTINEL_TIMEOUT,
        "socket_connect_timeout": SENTINEL_TIMEOUT,
        "retry": retry,
    }
    if config.sentinel_password:
        asking["password"] = config.sentinel_password
    return asking, {"db": config.db, "password": config.password}


def _new_sync(**options: Any) -> redis.Redis:
    """A client of the primary; call with _sync_lock held."""
    config = settings.REDIS_SENTINEL
    if config is None:
        return redis.Redis.from_url(redis_url(), **options)
    asking, primary = _sentinel_options(Retry(NoBackoff(), 0))
    if not _sync_sentinel:
        _sync_sentinel.append(redis.sentinel.Sentinel(config.sentinels, sentinel_kwargs=asking))
    return _sync_sentinel[0].master_for(config.master, **primary, **options)


def _new_async(**options: Any) -> aioredis.Redis:
    """A client of the primary for this event loop (its sentinel clients are the loop's)."""
    config = settings.REDIS_SENTINEL
    if config is None:
        return aioredis.Redis.from_url(redis_url(), **options)
    asking, primary = _sentinel_options(AsyncRetry(NoBackoff(), 0))
    loop = asyncio.get_running_loop()
    sentinel = _async_sentinels.get(loop)
    if sentinel is None:
        _close_with(loop)
        sentinel = _async_sentinels[loop] = redis.asyncio.sentinel.Sentinel(
            config.sentinels, sentinel_kwargs=asking
        )
    return sentinel.master_for(config.master, **primary, **options)


def sync_client() -> redis.Redis:
    """The process's client for state (str replies)."""
    with _sync_lock:
        client = _sync.get("state")
        if client is None:
            client = _sync["state"] = _new_sync(
                socket_timeout=SOCKET_TIMEOUT,
                socket_connect_timeout=CONNECT_TIMEOUT,
                decode_responses=True,
            )
        return client


def publisher() -> redis.Redis:
    """The process's client for publishing from synchronous code (bytes)."""
    with _sync_lock:
        client = _sync.get("publish")
        if client is None:
            client = _sync["publish"] = _new_sync(
                socket_timeout=PUBLISH_TIMEOUT,
                socket_connect_timeout=PUBLISH_TIMEOUT,
                # A connection left stale by a Redis restart: one quick retry, then give up.
                retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 2),
            )
        return client


def async_client() -> aioredis.Redis:
    """This event loop's client for state (str replies)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        _close_with(loop)
        client = _async_clients[loop] = _new_async(
            socket_timeout=SOCKET_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
            decode_responses=True,
        )
    return client


def async_publisher() -> aioredis.Redis:
    """This event loop's client for publishing (bytes)."""
    loop = asyncio.get_running_loop()
    client = _async_publishers.get(loop)
    if client is None:
        _close_with(loop)
        client = _async_publishers[loop] = _new_async(
            socket_timeout=PUBLISH_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
        )
    return client


def subscriber_client(name: str) -> aioredis.Redis:
    """A new client for one pub/sub session; `name` shows in CLIENT LIST for operators."""
    return _new_async(
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=None,
        client_name=f"{name}-{os.getpid()}",
        retry=Retry(NoBackoff(), 0, supported_errors=()),
    )


def probe_client(timeout: float) -> redis.Redis:
    """A new client whose every call gives up after `timeout` s, with no retries. With
    Sentinel, its own sentinel clients too (each asked in turn, `timeout` each): a probe
    must not wait on, nor share, the process's clients."""
    options: dict[str, Any] = {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        "retry": Retry(NoBackoff(), 0),
    }
    config = settings.REDIS_SENTINEL
    if config is None:
        return redis.Redis.from_url(redis_url(), **options)
    asking, primary = _sentinel_options(Retry(NoBackoff(), 0))
    asking |= {"socket_timeout": timeout, "socket_connect_timeout": timeout}
    sentinel = redis.sentinel.Sentinel(config.sentinels, sentinel_kwargs=asking)
    return sentinel.master_for(config.master, **primary, **options)


_wrapped: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


def _close_with(loop: asyncio.AbstractEventLoop) -> None:
    """Close this loop's clients when the loop closes. A server's loop lives as long as the
    process, but `async_to_sync(layer.group_send)` in a command runs each call in a new
    loop: without this every call would leave a Redis connection open (measured: 200 calls,
    200 connections). channels-redis does the same for its layers."""
    if loop in _wrapped:
        return
    _wrapped.add(loop)
    close = loop.close

    def close_clients_first(self: asyncio.AbstractEventLoop) -> None:
        if not self.is_running() and not self.is_closed():
            self.run_until_complete(_close_clients(self))
        self.close = close  # type: ignore[method-assign]
        close()

    loop.close = types.MethodType(close_clients_first, loop)  # type: ignore[method-assign]


async def _close_clients(loop: asyncio.AbstractEventLoop) -> None:
    clients = [found.pop(loop, None) for found in (_async_clients, _async_publishers)]
    sentinel = _async_sentinels.pop(loop, None)
    if sentinel is not None:
        clients += sentinel.sentinels
    for client in clients:
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()


async def close_loop_clients() -> None:
    """Close this loop's clients (tests, whose loops end after each test)."""
    await _close_clients(asyncio.get_running_loop())
