"""A personal notification, from the INSERT through commit, Redis and the server to the
SSE client of its recipient, at light load (target: p99 <= 50 ms).

    python -m bench.notify_latency --quick        # 100 users, 10 notifications/s, 10 s
    python -m bench.notify_latency                # 100 users, 10/s for 60 s
    python -m bench.notify_latency --server uvicorn

The publisher process calls notifications.services.notification_create (the real
service, signal and on-commit publish) for the users in turn; the send time is taken
just before the INSERT and carried in the title.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from bench.env import SERVERS, BenchEnv
from bench.ladder import HEADER, Ladder, run_ladder, save
from bench.procs import Publisher, SSELoadClient


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--seconds", type=float)
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    seconds = args.seconds or (10 if args.quick else 60)
    started = time.time()
    with BenchEnv() as env:
        users = env.create_users(args.users)
        server = env.start_server(args.server, label=f"notify-{args.server}")
        client = SSELoadClient(env)
        publisher = None
        try:
            opened = client.connect(
                port=server.port, path="/events/", sessions=[key for _, key in users]
            )
            print(f"{opened['connected']} users connected on their own streams")
            publisher = Publisher(env, mode="notify")
            extra = {"user_ids": [uid for uid, _ in users]}
            _, seq = run_ladder(
                server=server, client=client, publisher=publisher, ladder=Ladder([5], 1),
                receivers=1, first_seq=1, extra=extra,
            )  # fmt: skip
            print(HEADER)
            steps, _ = run_ladder(
                server=server, client=client, publisher=publisher,
                ladder=Ladder([args.rate], seconds), receivers=1, first_seq=seq, extra=extra,
            )  # fmt: skip
        finally:
            if publisher:
                publisher.stop()
            client.stop()
            env.stop_server(server)
    result = {
        "benchmark": "notify_latency",
        "server": args.server,
        "started": started,
        "users": args.users,
        "step": steps[0],
    }
    print(f"results: {save('notify_latency', result, args.json)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
