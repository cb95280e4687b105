"""Run a rate ladder against one server and measure each step; print and save results."""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.env import ServerProcess
from bench.procs import Publisher, SSELoadClient

RESULTS_DIR = Path(__file__).resolve().parent / "results"
P99_LIMIT_MS = 250.0  # the target
FAIL_P99_MS = 1000.0  # a step this slow (or with loss) ends the ladder


@dataclass
class Ladder:
    rates: list[float]  # published events per second, per step
    step_seconds: float
    pad: int = 150
    channel: str = "announcements"


def measure_idle_rss(server: ServerProcess, connect) -> dict[str, Any]:
    """Server RSS before and after `connect()` opens connections; per-connection delta."""
    time.sleep(0.3)
    before = server.rss()
    result = connect()
    time.sleep(1.0)
    after = server.rss()
    n = max(result["connected"], 1)
    return {
        **result,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "rss_per_conn_kb": round((after - before) / n / 1024, 1),
    }


def run_ladder(
    *,
    server: ServerProcess,
    client: SSELoadClient,
    publisher: Publisher,
    ladder: Ladder,
    receivers: int,
    first_seq: int,
    extra: dict[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], int]:
    """Publish each step, wait for delivery, collect the numbers; stop at the first failure."""
    steps = []
    seq = first_seq
    previous = client.stats(seq, seq)  # the counters so far, to report each step's own
    for rate in ladder.rates:
        count = max(1, round(rate * ladder.step_seconds))
        expected = count * receivers
        before = client.count()["received"]
        cpu0, client_cpu0, wall0 = server.cpu_seconds(), client.cpu_seconds(), time.monotonic()
        sent = publisher.run(
            rate=rate, count=count, first=seq, pad=ladder.pad, channel=ladder.channel,
            **(extra or {}),
        )  # fmt: skip
        _, seconds = client.wait_for(before + expected, timeout=30, idle=3)
        wall = max(time.monotonic() - wall0, 1e-6)
        # The delivery window: publishing time, or until the last delivery if that is later.
        window = max(sent["seconds"], seconds, 1e-6)
        stats = client.stats(seq, seq + count)
        duplicates = stats["duplicates"] - previous["duplicates"]
        gaps = stats["gaps"] - previous["gaps"]
        previous = stats
        step = {
            "rate_events_s": rate,
            "events": count,
            "receivers": receivers,
            "offered_deliveries_s": round(expected / max(sent["seconds"], 1e-6)),
            "delivered_deliveries_s": round(stats["delivered"] / window),
            "expected": expected,
            "delivered": stats["delivered"],
            # A repeated delivery does not make up for a missing one.
            "loss": expected - (stats["delivered"] - duplicates),
            "p50_ms": stats["p50_ms"],
            "p95_ms": stats["p95_ms"],
            "p99_ms": stats["p99_ms"],
            "max_ms": stats["max_ms"],
            "server_cpu_pct": round(100 * (server.cpu_seconds() - cpu0) / wall, 1),
            "server_rss_mb": round(server.rss() / 2**20, 1),
            "client_cpu_pct": round(100 * (client.cpu_seconds() - client_cpu0) / wall, 1),
            "open": stats["open"],
            "gaps": gaps,
            "duplicates": duplicates,
            "publisher_late_s": sent["late_s"],
        }
        step["ok"] = step["loss"] == 0 and not duplicates and step["p99_ms"] <= P99_LIMIT_MS
        steps.append(step)
        print_step(step)
        seq += count
        if step["loss"] or duplicates or not step["p99_ms"] <= FAIL_P99_MS:
            break
    return steps, seq


def best_sustained(steps: list[dict[str, Any]], p99_limit: float = P99_LIMIT_MS) -> int:
    """The highest delivered rate of a step with zero loss and p99 within the limit."""
    good = [
        s["delivered_deliveries_s"]
        for s in steps
        if s["loss"] == 0 and not s["duplicates"] and s["p99_ms"] <= p99_limit
    ]
    return max(good, default=0)


HEADER = (
    f"{'ev/s':>6} {'offered/s':>10} {'delivered/s':>11} {'loss':>6} {'p50 ms':>8} "
    f"{'p95 ms':>8} {'p99 ms':>8} {'srv cpu%':>8} {'srv MB':>7} {'cli cpu%':>8}"
)


def print_step(step: dict[str, Any]) -> None:
    print(
        f"{step['rate_events_s']:>6g} {step['offered_deliveries_s']:>10} "
        f"{step['delivered_deliveries_s']:>11} {step['loss']:>6} {step['p50_ms']:>8} "
        f"{step['p95_ms']:>8} {step['p99_ms']:>8} {step['server_cpu_pct']:>8} "
        f"{step['server_rss_mb']:>7} {step['client_cpu_pct']:>8}",
        flush=True,
    )


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def save(name: str, result: dict[str, Any], path: str | None = None) -> Path:
    target = Path(path) if path else RESULTS_DIR / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=2))
    return target
