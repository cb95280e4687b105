"""Every kind of Redis client Pulse makes reaches the primary that Sentinel names.

Run in processes of their own (as a server or a command is), configured only with a
redis+sentinel:// REDIS_URL, before and after the sentinels promote the replica.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from config.redis_sentinel import from_url
from realtime.redis_clients import probe_client
from tests.support.sentinel import SentinelGroup
from tests.support.servers import run_manage

pytestmark = pytest.mark.slow  # a Sentinel group and two Django processes, ~10 s

# Asks each client which port it reached; counts a rate-limit hit (the `limits` library on
# the async client's pool) and a channel-layer publish.
PROBE = """
import asyncio, json
from limits import RateLimitItemPerMinute
from realtime import ratelimit, redis_clients as rc
from realtime.layer import pulse_layer

async def reached():
    sub = rc.subscriber_client("probe")
    ports = {
        "async_client": (await rc.async_client().info("server"))["tcp_port"],
        "async_publisher": (await rc.async_publisher().info("server"))["tcp_port"],
        "subscriber_client": (await sub.info("server"))["tcp_port"],
    }
    await sub.aclose()
    assert await ratelimit.hit(RateLimitItemPerMinute(5), "probe", 1)
    await rc.close_loop_clients()
    return ports

ports = asyncio.run(reached())
ports["sync_client"] = rc.sync_client().info("server")["tcp_port"]
ports["publisher"] = rc.publisher().info("server")["tcp_port"]
assert pulse_layer().publish_sync([("probe", {"type": "probe"})])
print(json.dumps(ports))
"""
KINDS = {"async_client", "async_publisher", "subscriber_client", "sync_client", "publisher"}


def reached_ports(group: SentinelGroup) -> dict[str, int]:
    result = run_manage("shell", "-c", PROBE, redis_url=group.url)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_every_client_follows_the_primary_through_a_failover(sentinel_redis: SentinelGroup):
    before = reached_ports(sentinel_redis)
    assert before == dict.fromkeys(KINDS, sentinel_redis.primary.port)
    assert sentinel_redis.primary.client().keys("chat:limits*")

    old = sentinel_redis.kill_primary()
    new = sentinel_redis.wait_for_failover(old)
    assert new is sentinel_redis.replica
    assert reached_ports(sentinel_redis) == dict.fromkeys(KINDS, new.port)


@contextlib.contextmanager
def hanging_up_sentinel() -> Iterator[tuple[int, list[int]]]:
    """A port that accepts and at once closes every connection; yields (port, accepts)."""
    accepts: list[int] = []
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.1)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            with contextlib.suppress(TimeoutError):
                connection, _ = listener.accept()
                accepts.append(1)
                connection.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1], accepts
    finally:
        done.set()
        thread.join(5)
        listener.close()


def test_a_failing_sentinel_is_asked_once_then_the_next(sentinel_redis: SentinelGroup, settings):
    """redis-py's default would retry a sentinel thrice with backoff (seconds per lookup)."""
    with hanging_up_sentinel() as (port, accepts):
        settings.REDIS_SENTINEL = from_url(
            sentinel_redis.url.replace("redis+sentinel://", f"redis+sentinel://127.0.0.1:{port},")
        )
        assert settings.REDIS_SENTINEL.sentinels[0] == ("127.0.0.1", port)
        client = probe_client(1.0)
        try:
            assert client.info("server")["tcp_port"] == sentinel_redis.primary.port
        finally:
            client.close()
        assert len(accepts) == 1
