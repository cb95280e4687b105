"""Idle connections: RSS per connection held by one server process, and all still live.

    python -m bench.sse_idle --quick                  # 2,000 SSE connections
    python -m bench.sse_idle                          # 10,000 SSE connections
    python -m bench.sse_idle --ws 5000 --repeat 3     # the issue's target: 5,000 chat
                                                      # WebSockets + 5,000 SSE streams,
                                                      # 3 fresh servers, medians
    python -m bench.sse_idle --sse 20 --ws 20 --room-size 10   # the smoke run (tests/bench)
    python -m bench.sse_idle --server uvicorn

Each SSE connection is a different user on their default channels (`/events/`: their own
channels and `announcements`); each WebSocket is a different user's authenticated chat
socket (`/ws/chat/<slug>/`, welcome frame, presence) in one of the public rooms of
`--room-size` members. SSE streams open first, then the sockets; the server's RSS is read
before, between and after (each after a settle), so the figures are per connection of
each kind and for the mix. Then everything must still receive: one announcement goes to
all SSE streams (realtime.sse.publish_events, as services publish), and one chat message is
posted to each room (feeds.services.message_post: INSERT, commit, Redis, the process's
hub) for every socket. Latency is from the send time in each event to the client's
receipt (same clock). `--repeat` starts a fresh server (and clients) each time, over the
same users, and prints medians.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from typing import Any

from bench.env import SERVERS, BenchEnv, ServerProcess
from bench.ladder import median, save
from bench.procs import LineProcess, Publisher, SSELoadClient
from bench.ws_fanout import WSLoadClient

SETTLE_SECONDS = 3.0
ROOM_PREFIX = "idle-"


def _kb(delta: int, count: int) -> float:
    return round(delta / max(count, 1) / 1024, 1)


def _delivery(
    client: LineProcess, *, first: int, last: int, expected: int, before: int
) -> dict[str, Any]:
    """Wait until `expected` more deliveries arrived (or none for 5 s); their latencies."""
    client.wait_for(before + expected, timeout=60, idle=5)  # type: ignore[attr-defined]
    stats = client.ask(60, cmd="stats", first=first, last=last)
    return {
        "expected": expected,
        "delivered": stats["delivered"],
        "all": stats["delivered"] == expected and not stats["duplicates"],
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
        "max_ms": stats["max_ms"],
        "open": stats["open"],
        "closed": stats["closed"],
    }


def post_room_messages(rooms: list[Any], author: Any, first: int) -> float:
    """One chat message per room through the real service, `seq` and send time in each;
    returns the slowest post in ms (its INSERT and commit count in the latency)."""
    from feeds.services import message_post

    slowest = 0.0
    for i, room in enumerate(rooms):
        start = time.time()
        fields = {"seq": first + i, "t": start}  # first: the client reads them in order
        message_post(room=room, author=author, content="still there?", client_fields=fields)
        slowest = max(slowest, time.time() - start)
    return round(slowest * 1000, 1)


def run_once(
    env: BenchEnv,
    args: argparse.Namespace,
    *,
    sse_sessions: list[str],
    ws_sessions: list[str],
    ws_paths: list[str],
    rooms: list[Any],
    author: Any,
    seq: int,
) -> dict[str, Any]:
    server: ServerProcess = env.start_server(args.server, label=f"idle-{args.server}")
    sse, ws, publisher = SSELoadClient(env), WSLoadClient(env), None
    result: dict[str, Any] = {"server": args.server}
    try:
        time.sleep(0.5)
        rss = [server.rss()]
        if sse_sessions:
            opened = sse.connect(port=server.port, path="/events/", sessions=sse_sessions)
            result["sse"] = opened
            print(f"SSE: opened {opened['connected']} (failed {opened['failed']}) "
                  f"in {opened['seconds']} s", flush=True)  # fmt: skip
            time.sleep(SETTLE_SECONDS)
        rss.append(server.rss())
        if ws_sessions:
            timeout = 60 + len(ws_sessions) * 0.05
            opened = ws.ask(
                timeout, cmd="connect", port=server.port, path=ws_paths[0], paths=ws_paths,
                sessions=ws_sessions, streams=1,
            )  # fmt: skip
            result["ws"] = opened
            print(f"WS: opened {opened['connected']} (failed {opened['failed']}) "
                  f"in {opened['seconds']} s", flush=True)  # fmt: skip
            time.sleep(SETTLE_SECONDS)
        rss.append(server.rss())
        n_sse = result.get("sse", {}).get("connected", 0)
        n_ws = result.get("ws", {}).get("connected", 0)
        result["rss_mb"] = [round(r / 2**20, 1) for r in rss]
        result["rss_per_conn_kb"] = _kb(rss[2] - rss[0], n_sse + n_ws)
        result["rss_per_sse_kb"] = _kb(rss[1] - rss[0], n_sse) if n_sse else None
        result["rss_per_ws_kb"] = _kb(rss[2] - rss[1], n_ws) if n_ws else None
        print(
            f"server RSS {result['rss_mb'][0]} -> {result['rss_mb'][1]} (SSE) -> "
            f"{result['rss_mb'][2]} MB (WS): {result['rss_per_conn_kb']} KB per connection; "
            f"SSE {result['rss_per_sse_kb']} KB, WS {result['rss_per_ws_kb']} KB",
            flush=True,
        )
        if n_sse:
            publisher = Publisher(env, mode="ours")
            before = sse.count()["received"]
            publisher.run(rate=1, count=1, first=seq, pad=150, channel="announcements")
            result["sse_delivery"] = _delivery(
                sse, first=seq, last=seq + 1, expected=n_sse, before=before
            )
            _print_delivery("one announcement to the SSE streams", result["sse_delivery"])
        if n_ws:
            first = seq + 1
            before = ws.count()["received"]
            slowest_post = post_room_messages(rooms, author, first)
            result["ws_delivery"] = _delivery(
                ws, first=first, last=first + len(rooms), expected=n_ws, before=before
            )
            result["ws_delivery"]["slowest_post_ms"] = slowest_post
            _print_delivery(f"one message in each of {len(rooms)} rooms", result["ws_delivery"])
    finally:
        if publisher:
            publisher.stop()
        sse.stop()
        ws.stop()
        env.stop_server(server)
    return result


def _print_delivery(what: str, d: dict[str, Any]) -> None:
    print(
        f"{what}: delivered {d['delivered']}/{d['expected']} ({'all' if d['all'] else 'LOSS'}), "
        f"p50 {d['p50_ms']} ms, p99 {d['p99_ms']} ms, max {d['max_ms']} ms; "
        f"{d['open']} open, {d['closed']} closed"
        + (f"; slowest post {d['slowest_post_ms']} ms" if "slowest_post_ms" in d else ""),
        flush=True,
    )


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over the repeats; `all_delivered` only if every repeat delivered everything."""

    def med(*path: str) -> float | None:
        values = []
        for run in runs:
            value: Any = run
            for part in path:
                value = value.get(part) if isinstance(value, dict) else None
            if value is not None:
                values.append(value)
        return round(median(values), 1) if values else None

    summary: dict[str, Any] = {
        "repeats": len(runs),
        "rss_per_conn_kb": med("rss_per_conn_kb"),
        "rss_per_sse_kb": med("rss_per_sse_kb"),
        "rss_per_ws_kb": med("rss_per_ws_kb"),
        "rss_after_mb": round(median([r["rss_mb"][2] for r in runs]), 1),
    }
    for kind in ("sse", "ws"):
        if any(f"{kind}_delivery" in r for r in runs):
            summary[f"{kind}_connect_s"] = med(kind, "seconds")
            summary[f"{kind}_all_delivered"] = all(r[f"{kind}_delivery"]["all"] for r in runs)
            for q in ("p50_ms", "p99_ms", "max_ms"):
                summary[f"{kind}_{q}"] = med(f"{kind}_delivery", q)
    return summary


def print_summary(summary: dict[str, Any], *, n_sse: int, n_ws: int) -> None:
    print(
        f"\n== medians of {summary['repeats']}, {n_sse} SSE + {n_ws} WebSocket: "
        f"{summary['rss_per_conn_kb']} KB per connection (SSE {summary['rss_per_sse_kb']}, "
        f"WS {summary['rss_per_ws_kb']}), server {summary['rss_after_mb']} MB"
    )
    for kind in ("sse", "ws"):
        if f"{kind}_all_delivered" in summary:
            delivered = "all delivered" if summary[f"{kind}_all_delivered"] else "LOSS"
            print(
                f"{kind.upper():<4} {delivered} in every run: p50 {summary[f'{kind}_p50_ms']} ms, "
                f"p99 {summary[f'{kind}_p99_ms']} ms, max {summary[f'{kind}_max_ms']} ms"
            )


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument(
        "--sse", type=int, help="SSE connections (default: as --ws, else 10,000; quick 2,000)"
    )
    parser.add_argument("--ws", type=int, default=0, help="chat WebSocket connections")
    parser.add_argument("--room-size", type=int, default=100, help="sockets per chat room")
    parser.add_argument("--repeat", type=int, default=1, help="fresh servers, medians")
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    n_sse = args.sse if args.sse is not None else (args.ws or (2000 if args.quick else 10000))
    n_ws = args.ws
    started = time.time()
    runs = []
    with BenchEnv() as env:
        from feeds.models import Room

        print(f"creating {n_sse + n_ws} users with sessions", flush=True)
        sse_sessions = [key for _, key in env.create_users(n_sse, prefix="sse")]
        ws_sessions = [key for _, key in env.create_users(n_ws, prefix="ws")]
        n_rooms = math.ceil(n_ws / args.room_size) if n_ws else 0
        rooms = [
            Room.objects.create(slug=f"{ROOM_PREFIX}{i}", title=f"Idle {i}") for i in range(n_rooms)
        ]
        ws_paths = [f"/ws/chat/{ROOM_PREFIX}{i // args.room_size}/" for i in range(n_ws)]
        from django.contrib.auth.models import User

        (author_id, _), = env.create_users(1, prefix="poster")  # fmt: skip
        author = User.objects.get(pk=author_id)
        for i in range(args.repeat):
            print(f"\n== {args.server}: {n_sse} SSE + {n_ws} WebSocket, run {i + 1}", flush=True)
            runs.append(
                run_once(
                    env, args, sse_sessions=sse_sessions, ws_sessions=ws_sessions,
                    ws_paths=ws_paths, rooms=rooms, author=author, seq=10**12 + i * 10**6,
                )
            )  # fmt: skip
    summary = summarize(runs)
    print_summary(summary, n_sse=n_sse, n_ws=n_ws)
    result = {
        "benchmark": "sse_idle",
        "server": args.server,
        "started": started,
        "seconds": round(time.time() - started, 1),
        "args": vars(args),
        "summary": summary,
        "runs": runs,
    }
    print(f"results: {save('sse_idle', result, args.json)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
