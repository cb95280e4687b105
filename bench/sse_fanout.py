"""SSE fan-out: N authenticated users on one public channel, ours against stock.

    python -m bench.sse_fanout --quick                 # ~2 min: 1,000 users, daphne
    python -m bench.sse_fanout                         # full ladder, 3 repeats, medians
    python -m bench.sse_fanout --servers daphne,uvicorn
    python -m bench.sse_fanout --clients 20 --rates 5,10 --step-seconds 1 --no-stock

Per step it prints offered and delivered deliveries/s, p50/p95/p99 latency (publisher's
time.time() in the payload to the client's time.time() on receipt, same machine), loss,
server CPU and RSS and the load client's CPU; then RSS per idle connection, the best
sustained rate (zero loss, p99 <= 250 ms) and the ratio ours/stock. JSON goes to
bench/results/.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.env import SERVERS, BenchEnv
from bench.ladder import (
    FAIL_P99_MS,
    HEADER,
    P99_LIMIT_MS,
    Ladder,
    best_sustained,
    measure_idle_rss,
    median,
    run_ladder,
    save,
)
from bench.procs import Publisher, SSELoadClient
from bench.profile import profiling

OURS_PATH = "/events/?channel=announcements"
STOCK_PATH = "/bench/stock-events/"
QUICK_RATES = [5, 15, 25, 35]
FULL_RATES = [2, 5, 10, 15, 20, 25, 30, 40, 50, 60]


def run_target(
    env: BenchEnv,
    sessions: list[str],
    *,
    kind: str,
    stock: bool,
    ladder: Ladder,
    profile: str | None = None,
) -> dict[str, Any]:
    label = f"{'stock' if stock else 'ours'}-{kind}"
    print(f"\n== {label}: {len(sessions)} SSE clients on one public channel", flush=True)
    server = env.start_server(kind, stock=stock, label=label)
    client = SSELoadClient(env)
    publisher = None
    try:
        path = STOCK_PATH if stock else OURS_PATH
        idle = measure_idle_rss(
            server, lambda: client.connect(port=server.port, path=path, sessions=sessions)
        )
        print(
            f"connected {idle['connected']} (failed {idle['failed']}) in {idle['seconds']} s; "
            f"RSS {idle['rss_before_mb']} -> {idle['rss_after_mb']} MB, "
            f"{idle['rss_per_conn_kb']} KB per idle connection",
            flush=True,
        )
        publisher = Publisher(env, mode="stock" if stock else "ours")
        receivers = idle["connected"]
        # Warm-up: one event end to end, so lazy imports and first-use costs are not measured.
        _, seq = run_ladder(
            server=server, client=client, publisher=publisher,
            ladder=Ladder([1], 1, ladder.pad, ladder.channel), receivers=receivers, first_seq=1,
        )  # fmt: skip
        print(HEADER, flush=True)
        with profiling(server, profile, label):
            steps, _ = run_ladder(
                server=server, client=client, publisher=publisher, ladder=ladder,
                receivers=receivers, first_seq=seq,
            )  # fmt: skip
    finally:
        if publisher:
            publisher.stop()
        client.stop()
        env.stop_server(server)
    return {
        "label": label,
        "server": kind,
        "stock": stock,
        "clients": len(sessions),
        "idle": idle,
        "steps": steps,
        "sustained_p99_250ms": best_sustained(steps, P99_LIMIT_MS),
        "sustained_p99_1s": best_sustained(steps, FAIL_P99_MS),
    }


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per target across repeats, and ours/stock ratios per server."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_label.setdefault(run["label"], []).append(run)
    summary: dict[str, Any] = {}
    for label, group in by_label.items():
        summary[label] = {
            "repeats": len(group),
            "sustained_p99_250ms": median([r["sustained_p99_250ms"] for r in group]),
            "sustained_p99_1s": median([r["sustained_p99_1s"] for r in group]),
            "rss_per_conn_kb": median([r["idle"]["rss_per_conn_kb"] for r in group]),
            "connect_seconds": median([r["idle"]["seconds"] for r in group]),
        }
    for kind in SERVERS:
        ours, stock = summary.get(f"ours-{kind}"), summary.get(f"stock-{kind}")
        if ours and stock:
            for key in ("sustained_p99_250ms", "sustained_p99_1s"):
                base = stock[key]
                ours[f"ratio_{key}"] = round(ours[key] / base, 1) if base else None
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print("\n== summary (medians)")
    print(f"{'target':<16} {'0 loss,p99<=250ms':>18} {'0 loss,p99<=1s':>15} {'KB/conn':>8} ratio")
    for label, s in summary.items():
        ratio = s.get("ratio_sustained_p99_250ms") or s.get("ratio_sustained_p99_1s") or ""
        print(
            f"{label:<16} {s['sustained_p99_250ms']:>18g} {s['sustained_p99_1s']:>15g} "
            f"{s['rss_per_conn_kb']:>8g} {ratio}"
        )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short ladder, one repeat (~2 min)")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rates", help="events/s per step, comma-separated")
    parser.add_argument("--step-seconds", type=float)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--servers", default="daphne", help="daphne,uvicorn")
    parser.add_argument("--no-stock", action="store_true", help="skip the stock baseline")
    parser.add_argument("--stock-only", action="store_true")
    parser.add_argument("--pad", type=int, default=150, help="payload padding (bytes)")
    parser.add_argument("--json", help="write results here instead of bench/results/")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the server during the ladder; stacks go to DIR"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    rates = [float(r) for r in args.rates.split(",")] if args.rates else None
    ladder = Ladder(
        rates=rates or (QUICK_RATES if args.quick else FULL_RATES),
        step_seconds=args.step_seconds or (3 if args.quick else 8),
        pad=args.pad,
    )
    repeat = args.repeat or (1 if args.quick else 3)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    targets = [(k, s) for k in kinds for s in (False, True)]
    if args.no_stock:
        targets = [(k, s) for k, s in targets if not s]
    if args.stock_only:
        targets = [(k, s) for k, s in targets if s]
    started = time.time()
    with BenchEnv() as env:
        users = env.create_users(args.clients)
        sessions = [key for _, key in users]
        runs = [
            run_target(env, sessions, kind=kind, stock=stock, ladder=ladder, profile=args.profile)
            for _ in range(repeat)
            for kind, stock in targets
        ]
    summary = summarize(runs)
    print_summary(summary)
    result = {
        "benchmark": "sse_fanout",
        "started": started,
        "seconds": round(time.time() - started, 1),
        "args": vars(args),
        "ladder": vars(ladder),
        "summary": summary,
        "runs": runs,
    }
    print(f"results: {save('sse_fanout', result, args.json)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
