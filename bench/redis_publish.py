"""How many PUBLISH commands per second the run's Redis takes, with one subscriber per
server process, as the hubs subscribe.

Every event Pulse sends is one PUBLISH to a group, whatever the audience (a room of 100,
an announcement to everyone), which Redis copies to each subscribed server process: this
rate bounds the events per second of a deployment that shares one Redis. Measured with
`redis-cli` (it ships beside the redis-server that bench/ runs): `--pipe` streams the
commands as fast as Redis answers, and the subscribers are `redis-cli SUBSCRIBE` processes
writing to /dev/null, so no Python client sets the pace. Redis's own CPU is read from /proc.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psutil

from config.redis_server import redis_executable

CHANNEL = "bench-capacity-publish"


def redis_cli() -> str:
    beside = Path(redis_executable()).with_name("redis-cli")
    found = str(beside) if beside.exists() else shutil.which("redis-cli")
    if not found:
        raise SystemExit("no redis-cli beside redis-server: apt-get install redis-tools")
    return found


def _resp(*parts: bytes) -> bytes:
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _subscribed(cli: str, socket_path: str) -> int:
    out = subprocess.run(
        [cli, "-s", socket_path, "PUBSUB", "NUMSUB", CHANNEL],
        capture_output=True,
        text=True,
        timeout=10,
    ).stdout.split()
    return int(out[-1]) if out else 0


def measure(
    socket_path: str, redis_pid: int, *, subscribers: int, count: int = 200_000, size: int = 330
) -> dict[str, Any]:
    """PUBLISH `count` messages of `size` bytes to `subscribers` subscribers."""
    cli = redis_cli()
    subs = [
        subprocess.Popen(
            [cli, "-s", socket_path, "SUBSCRIBE", CHANNEL],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(subscribers)
    ]
    try:
        deadline = time.monotonic() + 10
        while _subscribed(cli, socket_path) < subscribers and time.monotonic() < deadline:
            time.sleep(0.05)
        commands = _resp(b"PUBLISH", CHANNEL.encode(), b"x" * size) * count
        redis = psutil.Process(redis_pid)
        cpu0, start = sum(redis.cpu_times()[:2]), time.monotonic()
        run = subprocess.run(
            [cli, "-s", socket_path, "--pipe"], input=commands, capture_output=True, timeout=120
        )
        wall = time.monotonic() - start
        cpu = sum(redis.cpu_times()[:2]) - cpu0
        # A subscriber too slow for Redis's output-buffer limit would have been dropped.
        kept = _subscribed(cli, socket_path)
    finally:
        for sub in subs:
            sub.terminate()
        for sub in subs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                sub.wait(timeout=5)
    if run.returncode or b"errors: 0" not in run.stdout:
        raise RuntimeError(f"redis-cli --pipe failed: {run.stdout[-300:]!r} {run.stderr[-300:]!r}")
    return {
        "publishes": count,
        "subscribers": subscribers,
        "subscribers_after": kept,
        "payload_bytes": size,
        "seconds": round(wall, 3),
        "publishes_per_s": round(count / wall),
        "redis_cpu_s": round(cpu, 3),
        "publishes_per_redis_cpu_s": round(count / cpu) if cpu > 0 else None,
    }
