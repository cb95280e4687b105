"""Idle connections: RSS per connection held by one server process, and all still live.

    python -m bench.sse_idle --quick          # 2,000 SSE connections
    python -m bench.sse_idle                  # 10,000 SSE connections (the issue's target
                                              # is 10,000 half WebSocket, half SSE)
    python -m bench.sse_idle --server uvicorn

Each connection is a different user on their default channels (`/events/`: their own
channels and `announcements`). After they are all open and the server settled, one
announcement goes out: every connection must receive it (the fan-out latency of that
one event to all of them is reported too). WebSocket connections plug in through
`--ws`, once bench/ws_fanout.py provides a WebSocket load client.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.env import SERVERS, BenchEnv
from bench.ladder import Ladder, run_ladder, save
from bench.procs import Publisher, SSELoadClient


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--sse", type=int, help="SSE connections (default 10,000; quick 2,000)")
    parser.add_argument("--ws", type=int, default=0, help="WebSocket connections (needs ws client)")
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    if args.ws:
        raise SystemExit("--ws: no WebSocket load client yet (bench/ws_fanout.py, see docs)")
    count = args.sse or (2000 if args.quick else 10000)
    started = time.time()
    with BenchEnv() as env:
        print(f"creating {count} users with sessions", flush=True)
        sessions = [key for _, key in env.create_users(count)]
        server = env.start_server(args.server, label=f"idle-{args.server}")
        client = SSELoadClient(env)
        publisher = None
        try:
            time.sleep(0.5)
            before = server.rss()
            opened = client.connect(port=server.port, path="/events/", sessions=sessions)
            print(
                f"opened {opened['connected']} (failed {opened['failed']}) in {opened['seconds']} s"
            )
            time.sleep(3)
            after = server.rss()
            per_conn = (after - before) / max(opened["connected"], 1) / 1024
            print(
                f"server RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MB: "
                f"{per_conn:.1f} KB per idle SSE connection",
                flush=True,
            )
            publisher = Publisher(env, mode="ours")
            steps, _ = run_ladder(
                server=server, client=client, publisher=publisher,
                ladder=Ladder([1], 1), receivers=opened["connected"], first_seq=10**12,
            )  # fmt: skip
        finally:
            if publisher:
                publisher.stop()
            client.stop()
            env.stop_server(server)
    step = steps[0]
    print(
        f"one announcement to all {opened['connected']}: delivered {step['delivered']} "
        f"(loss {step['loss']}), p50 {step['p50_ms']} ms, p99 {step['p99_ms']} ms, "
        f"max {step['max_ms']} ms"
    )
    result = {
        "benchmark": "sse_idle",
        "server": args.server,
        "started": started,
        "connections": opened,
        "rss_before_mb": round(before / 2**20, 1),
        "rss_after_mb": round(after / 2**20, 1),
        "rss_per_conn_kb": round(per_conn, 1),
        "broadcast": step,
    }
    print(f"results: {save('sse_idle', result, args.json)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
