"""What Sentinel costs a Pulse process: publishes and reconnects, plain REDIS_URL vs Sentinel.

    python -m bench.sentinel                 # 2,000 publishes, 100 reconnects, 10 rounds
    python -m bench.sentinel --quick         # 1,000 / 50, 1 round

Both modes talk to the same primary (tests.support.sentinel: a primary, a replica and
three sentinels on free ports), each in fresh processes configured only by REDIS_URL:
`redis://<primary>` or `redis+sentinel://<sentinels>/<master>`, alternating per round.
A publish is `PulseChannelLayer.publish_sync` (what services call after commit) and the
async publisher's PUBLISH; a reconnect drops the publisher's pool and publishes again,
which with Sentinel first asks a sentinel where the primary is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MODES = ("plain", "sentinel")


def child(publishes: int, reconnects: int) -> dict[str, float]:
    """Run in a fresh process: microseconds per operation."""
    import django

    django.setup()
    from realtime.layer import pulse_layer
    from realtime.redis_clients import async_publisher, close_loop_clients, publisher

    layer = pulse_layer()
    message = [("bench-sentinel", {"type": "bench", "n": 1})]
    assert layer.publish_sync(message)  # connected before timing
    started = time.perf_counter()
    for _ in range(publishes):
        layer.publish_sync(message)
    sync_us = (time.perf_counter() - started) / publishes * 1e6

    started = time.perf_counter()
    for _ in range(reconnects):
        publisher().connection_pool.disconnect()
        assert layer.publish_sync(message)
    reconnect_us = (time.perf_counter() - started) / reconnects * 1e6

    async def publish_async() -> float:
        client = async_publisher()
        await client.publish("bench-sentinel", b"x")
        began = time.perf_counter()
        for _ in range(publishes):
            await client.publish("bench-sentinel", b"x")
        spent = time.perf_counter() - began
        await close_loop_clients()
        return spent / publishes * 1e6

    async_us = asyncio.run(publish_async())
    return {"publish_sync_us": sync_us, "publish_async_us": async_us, "reconnect_us": reconnect_us}


def run_child(url: str, publishes: int, reconnects: int) -> dict[str, float]:
    env = dict(os.environ, REDIS_URL=url, DEBUG="1", DJANGO_SETTINGS_MODULE="config.settings")
    env.pop("REDIS_SENTINELS", None)
    result = subprocess.run(
        [sys.executable, "-m", "bench.sentinel", "--child", str(publishes), str(reconnects)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise RuntimeError(result.stderr)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--publishes", type=int)
    parser.add_argument("--reconnects", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    publishes = args.publishes or (1000 if args.quick else 2000)
    reconnects = args.reconnects or (50 if args.quick else 100)
    rounds = args.rounds or (1 if args.quick else 10)

    # The test harness's group: the same processes the fault tests fail over.
    from tests.support.sentinel import HOST, SentinelGroup

    group = SentinelGroup(Path(tempfile.mkdtemp(prefix="bench-sentinel-"))).start()
    urls = {"plain": f"redis://{HOST}:{group.primary.port}/0", "sentinel": group.url}
    samples: dict[str, list[dict[str, float]]] = {mode: [] for mode in MODES}
    try:
        for n in range(rounds):
            for mode in MODES if n % 2 == 0 else MODES[::-1]:
                samples[mode].append(run_child(urls[mode], publishes, reconnects))
    finally:
        group.stop()

    # The best round of each, as timeit reports: on a shared machine the other rounds
    # measure the neighbours' load as much as the code (medians printed beside it).
    best = {mode: {k: min(s[k] for s in runs) for k in runs[0]} for mode, runs in samples.items()}
    median = {
        mode: {k: statistics.median(s[k] for s in runs) for k in runs[0]}
        for mode, runs in samples.items()
    }
    print(f"{publishes} publishes, {reconnects} reconnects, {rounds} round(s); µs per operation")
    print(f"{'best of rounds':18}{'plain':>10}{'sentinel':>10}{'ratio':>8}   median plain/sentinel")
    for key in best["plain"]:
        plain, sentinel = best["plain"][key], best["sentinel"][key]
        print(
            f"{key:18}{plain:10.1f}{sentinel:10.1f}{sentinel / plain:8.2f}   "
            f"{median['plain'][key]:.1f} / {median['sentinel'][key]:.1f}"
        )
    result = {
        "benchmark": "sentinel",
        "publishes": publishes,
        "reconnects": reconnects,
        "rounds": rounds,
        **best,
        "median": median,
    }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        print(json.dumps(child(int(sys.argv[2]), int(sys.argv[3]))))
    else:
        main()
