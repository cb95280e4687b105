"""Redis clients for state shared by every server process (presence, rate limits, caps).

Beside pub/sub (the channel layer), this is the other use of Redis: small keys and Lua
scripts that must see every process's connections at once. The clients come from
realtime.redis_clients. Keys keep the `chat:` prefix they were created with.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from realtime.redis_clients import async_client, close_loop_clients, sync_client

__all__ = [
    "KEY_PREFIX",
    "async_client",
    "close_async_client",
    "key",
    "run_per_key",
    "run_script",
    "sync_client",
]

KEY_PREFIX = "chat:"
# Members per script of run_per_key: 10,000 members hold Redis ~1 ms at a time, not ~10 ms.
SCRIPT_BATCH = 1000

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


async def run_per_key(
    source: str, members: Mapping[str, Sequence[str]], head: Sequence[Any] = ()
) -> list[Any]:
    """Run a script over many keys and their members, about SCRIPT_BATCH members a script.

    The script gets KEYS: the keys of its share; ARGV: `head`, then for each key its member
    count and members. Returns what each script returned, in order.
    """
    results: list[Any] = []
    keys: list[str] = []
    args: list[Any] = list(head)
    for name, names in members.items():
        keys.append(name)
        args += [len(names), *names]
        if len(args) - len(head) >= SCRIPT_BATCH:
            results.append(await run_script(source, keys, args))
            keys, args = [], list(head)
    if keys:
        results.append(await run_script(source, keys, args))
    return results


async def close_async_client() -> None:
    """Close this loop's clients (tests, whose loops end after each test)."""
    await close_loop_clients()
