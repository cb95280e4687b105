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
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import types
import weakref

import redis
import redis.asyncio as aioredis
from django.conf import settings
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

# Short, unlike a blocking read: every command sent through these answers at once.
SOCKET_TIMEOUT = 5.0
CONNECT_TIMEOUT = 2.0
PUBLISH_TIMEOUT = 2.0

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
_async_publishers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
    weakref.WeakKeyDictionary()
)
_sync: dict[str, redis.Redis] = {}
_sync_lock = threading.Lock()


def redis_url() -> str:
    return settings.REDIS_URL


def sync_client() -> redis.Redis:
    """The process's client for state (str replies)."""
    with _sync_lock:
        client = _sync.get("state")
        if client is None:
            client = _sync["state"] = redis.Redis.from_url(
                redis_url(),
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
            client = _sync["publish"] = redis.Redis.from_url(
                redis_url(),
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
        client = _async_clients[loop] = aioredis.Redis.from_url(
            redis_url(),
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
        client = _async_publishers[loop] = aioredis.Redis.from_url(
            redis_url(),
            socket_timeout=PUBLISH_TIMEOUT,
            socket_connect_timeout=CONNECT_TIMEOUT,
        )
    return client


def subscriber_client(name: str) -> aioredis.Redis:
    """A new client for one pub/sub session; `name` shows in CLIENT LIST for operators."""
    return aioredis.Redis.from_url(
        redis_url(),
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=None,
        client_name=f"{name}-{os.getpid()}",
        retry=Retry(NoBackoff(), 0, supported_errors=()),
    )


def probe_client(timeout: float) -> redis.Redis:
    """A new client whose every call gives up after `timeout` s, with no retries."""
    return redis.Redis.from_url(
        redis_url(),
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=Retry(NoBackoff(), 0),
    )


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
        for clients in (_async_clients, _async_publishers):
            client = clients.pop(self, None)
            if client is not None and not self.is_running() and not self.is_closed():
                with contextlib.suppress(Exception):
                    self.run_until_complete(client.aclose())
        self.close = close  # type: ignore[method-assign]
        close()

    loop.close = types.MethodType(close_clients_first, loop)  # type: ignore[method-assign]


async def close_loop_clients() -> None:
    """Close this loop's clients (tests, whose loops end after each test)."""
    loop = asyncio.get_running_loop()
    for clients in (_async_clients, _async_publishers):
        client = clients.pop(loop, None)
        if client is not None:
            await client.aclose()
