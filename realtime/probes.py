"""Can this process reach its database and Redis: the checks at start and `GET /readyz`.

At start (`manage.py serve`, `python -m config.daphne_server`) a server that cannot reach
either says which and why in one line and exits non-zero, instead of serving errors. While
it runs, `/readyz` answers 503 naming what is unreachable, so a load balancer or service
manager stops sending it new clients; the connections it holds meanwhile are told by
their own paths (chat `unavailable` errors, SSE resyncs) and lose nothing stored.
"""

from __future__ import annotations

import asyncio
import copy
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import redis
from django.db import connections
from django.db.utils import load_backend

from realtime.redis_clients import probe_client

logger = logging.getLogger(__name__)

# A check that takes longer than this has failed.
START_TIMEOUT = 3.0
READY_TIMEOUT = 1.0

DATABASE, REDIS = "database", "redis"


def database_problem() -> str | None:
    """Why the default database does not answer `SELECT 1` on a new connection, or None."""
    try:
        connection = _new_connection()
    except Exception as exc:
        return f"DATABASE_URL is not usable: {_one_line(exc)}"
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:
        return f"database unreachable: {_one_line(exc)}"
    finally:
        connection.close()
    return None


def _new_connection() -> Any:
    """A connection of its own, outside the process's pool: a pool would wait 20 s for a
    server that is not there, and a pool that is busy is not a database that is down."""
    settings_dict = copy.deepcopy(connections["default"].settings_dict)
    options = settings_dict.setdefault("OPTIONS", {})
    options.pop("pool", None)
    if settings_dict["ENGINE"] == "django.db.backends.postgresql":
        options["connect_timeout"] = int(START_TIMEOUT)
    return load_backend(settings_dict["ENGINE"]).DatabaseWrapper(settings_dict, alias="probe")


def redis_problem(timeout: float = START_TIMEOUT) -> str | None:
    """Why Redis (REDIS_URL) does not answer PING within `timeout`, or None."""
    try:
        client = probe_client(timeout)
    except ValueError as exc:
        return f"REDIS_URL is not valid: {_one_line(exc)}"
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return f"Redis unreachable: {_one_line(exc)}"
    finally:
        client.close()
    return None


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


def start_problem() -> str | None:
    """At start: what is unreachable or malformed, in one line; None if all is well."""
    problems = [p for p in (redis_problem(), database_problem()) if p]
    return "; ".join(problems) or None


def exit_unless_reachable(program: str) -> None:
    """At start: say what is unreachable in one line on stderr and exit 1."""
    problem = start_problem()
    if problem:
        print(f"{program}: cannot start: {problem}", file=sys.stderr)
        raise SystemExit(1)


# -- /readyz ------------------------------------------------------------------------------


class _Coalesced:
    """One check in flight per event loop: probes that arrive meanwhile await the same
    answer instead of queueing more work behind an unreachable server."""

    def __init__(self, check: Callable[[], Awaitable[str | None]]) -> None:
        self.check = check
        self.running: dict[asyncio.AbstractEventLoop, asyncio.Future[str | None]] = {}

    async def __call__(self) -> str | None:
        loop = asyncio.get_running_loop()
        future = self.running.get(loop)
        if future is None or future.done():
            future = self.running[loop] = asyncio.ensure_future(self.check())
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                return await asyncio.shield(future)
        except TimeoutError:
            return f"no answer within {READY_TIMEOUT} s"


# In a worker thread each, never on a live path's database thread (realtime.db): a server
# that hangs must not hold up connects.
async def _database_problem_async() -> str | None:
    return await asyncio.to_thread(database_problem)


async def _redis_problem_async() -> str | None:
    return await asyncio.to_thread(redis_problem, READY_TIMEOUT)


_checks = {DATABASE: _Coalesced(_database_problem_async), REDIS: _Coalesced(_redis_problem_async)}
_failing: set[str] = set()


async def unready() -> dict[str, str]:
    """What this process cannot reach now ({} when ready), each with the reason."""
    names = list(_checks)
    results = await asyncio.gather(*(_checks[name]() for name in names))
    failed = {name: problem for name, problem in zip(names, results, strict=True) if problem}
    for name in names:
        if name in failed and name not in _failing:
            logger.warning("not ready: %s", failed[name])
        elif name not in failed and name in _failing:
            logger.warning("ready again: %s reachable", name)
    _failing.clear()
    _failing.update(failed)
    return failed
