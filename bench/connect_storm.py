"""What a connect costs the server: N clients connecting in a burst to one process.

    python -m bench.connect_storm [--clients 1000] [--concurrency 200] [--runs 1]
                                  [--database-url postgres://user@host:port/] [--profile DIR]

Each transport gets a fresh server process (the production command line, `manage.py
serve`'s daphne), a warm-up, then a burst of N distinct users connecting `concurrency` at a
time, the way browsers come back after a restart:

- chat: a WebSocket to `/ws/chat/<room>/` that counts as served when its welcome arrives
  (50 messages of history, the room's presence), over 4 rooms;
- sse: `GET /events/` resuming with a `Last-Event-ID` a few notifications behind, served
  when `stream-open` arrives (after the replay);
- stock: the baseline, in the same run: a bare Channels consumer behind
  `AuthMiddlewareStack` on plain daphne (bench.stock_asgi) that accepts and sends one JSON
  frame.

It reports server CPU per connect (from /proc, so it does not depend on how busy the
machine is as much as wall time does), connects per second and the time until all were
served, and with `--profile DIR` where the server's time went (py-spy, grouped into the
parts of a connect). `--database-url` runs it on PostgreSQL: a fresh database is created
on that server and dropped at the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench.env import BenchEnv, ServerProcess
from bench.procs import LineProcess, SSELoadClient
from bench.profile import profiling, py_spy
from bench.ws_fanout import OURS_APP, STOCK_APP, start_ws_server

ROOMS = 4
HISTORY = 60  # messages per room: more than a welcome's 50
BEHIND = 3  # notifications each SSE client has missed
WARM_UP = 20
TRANSPORTS = ("chat", "sse", "stock")

# Where a connect's time goes: the first matching rule names a sample's part (py-spy
# frames are "function (file)"; rules are substrings of the whole stack, most specific
# first).
PARTS = [
    ("replay queries", ("replay.py", "storage.py")),
    ("welcome history", ("message_history",)),
    ("room access", ("room_entry",)),
    ("presence", ("presence.py",)),
    ("channel list", ("channels.py",)),
    ("session lookup", ("sessions/backends",)),
    ("user lookup", ("get_user (", "auth/__init__.py")),
    ("logging", ("logging/__init__.py",)),
    ("handshake (autobahn)", ("autobahn/",)),
    ("middleware and Django request", ("django/core/handlers", "django/middleware")),
    ("thread hops (asgiref)", ("asgiref/",)),
    ("Twisted reactor and I/O", ("twisted/",)),
]


class WSLoadClient(LineProcess):
    """bench.ws_client in its own process."""

    def __init__(self, env: BenchEnv) -> None:
        import os

        super().__init__("bench.ws_client", dict(os.environ, **env.base_env()))

    def connect(
        self, *, port: int, sessions: list[str], paths: list[str], concurrency: int
    ) -> dict[str, Any]:
        return self.ask(
            60 + len(sessions) * 0.05, cmd="connect", port=port, path=paths[0],
            sessions=sessions, paths=paths, concurrency=concurrency,
        )  # fmt: skip


# ---------------------------------------------------------------- the world


def make_world(env: BenchEnv, clients: int) -> dict[str, Any]:
    """Users with sessions (warm-up ones apart), rooms with history, missed notifications."""
    from django.contrib.auth.models import User

    from feeds.models import Message, Room
    from notifications.channels import channels_for_user
    from notifications.models import Notification
    from notifications.storage import stream_position

    sessions = env.create_users(clients + WARM_UP, prefix="storm")
    users = User.objects.in_bulk([uid for uid, _ in sessions])
    rooms = [Room.objects.create(slug=f"storm-{r}", title=f"Storm {r}") for r in range(ROOMS)]
    author = users[sessions[0][0]]
    Message.objects.bulk_create(
        Message(room=room, author=author, content=f"history {n}")
        for room in rooms
        for n in range(HISTORY)
    )
    # Each user has BEHIND + 1 notifications; the client resumes after the first.
    Notification.objects.bulk_create(
        Notification(recipient_id=uid, title=f"missed {k}")
        for uid, _ in sessions
        for k in range(BEHIND + 1)
    )
    first = dict(
        Notification.objects.filter(recipient_id__in=users)
        .order_by("recipient_id", "id")
        .distinct("recipient_id")
        .values_list("recipient_id", "id")
        if env.is_postgres
        else _first_per_user(Notification, list(users))
    )
    last_event_ids = []
    for uid, _ in sessions:
        position = stream_position(channels_for_user(users[uid]))
        position[f"user-{uid}"] = first[uid]
        last_event_ids.append(",".join(f"{c}:{i}" for c, i in position.items()))
    return {
        "sessions": [key for _, key in sessions],
        "last_event_ids": last_event_ids,
        "paths": [f"/ws/chat/{rooms[i % ROOMS].slug}/" for i in range(len(sessions))],
    }


def _first_per_user(model: Any, user_ids: list[int]) -> list[tuple[int, int]]:
    from django.db.models import Min

    rows = model.objects.filter(recipient_id__in=user_ids).values("recipient_id")
    return [(r["recipient_id"], r["first"]) for r in rows.annotate(first=Min("id"))]


# ---------------------------------------------------------------- one burst


def burst(
    env: BenchEnv, world: dict[str, Any], transport: str, *, concurrency: int, profile: str | None
) -> dict[str, Any]:
    """Start a server for `transport`, warm it up, connect everyone; return the figures."""
    app = STOCK_APP if transport == "stock" else OURS_APP
    server = start_ws_server(env, "daphne", app=app, label=f"storm-{transport}")
    client: LineProcess = SSELoadClient(env) if transport == "sse" else WSLoadClient(env)
    try:
        warm, measured = slice(0, WARM_UP), slice(WARM_UP, None)
        connect(client, server, world, transport, warm, concurrency)
        time.sleep(1.0)  # let the warm-up's stragglers settle before the meter starts
        before = server.cpu_seconds()
        with profiling(server, profile, f"storm-{transport}"):
            result = connect(client, server, world, transport, measured, concurrency)
        cpu = server.cpu_seconds() - before
        served = result["connected"]
        return {
            "transport": transport,
            "clients": len(world["sessions"][measured]),
            "served": served,
            "failed": result["failed"],
            "seconds": result["seconds"],
            "connects_per_s": round(served / result["seconds"], 1) if result["seconds"] else 0,
            "cpu_s": round(cpu, 3),
            "cpu_ms_per_connect": round(1000 * cpu / served, 2) if served else None,
        }
    finally:
        client.stop()
        env.stop_server(server)


def connect(
    client: LineProcess,
    server: ServerProcess,
    world: dict[str, Any],
    transport: str,
    which: slice,
    concurrency: int,
) -> dict[str, Any]:
    sessions = world["sessions"][which]
    if transport == "sse":
        assert isinstance(client, SSELoadClient)
        return client.connect(
            port=server.port, path="/events/", sessions=sessions, concurrency=concurrency,
            last_event_ids=world["last_event_ids"][which],
        )  # fmt: skip
    assert isinstance(client, WSLoadClient)
    return client.connect(
        port=server.port, sessions=sessions, paths=world["paths"][which], concurrency=concurrency
    )


# ---------------------------------------------------------------- profiles


def parts(path: Path) -> Counter[str]:
    """Samples of a py-spy raw profile per part of a connect (see PARTS)."""
    counts: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        part = next((name for name, keys in PARTS if any(k in stack for k in keys)), "other")
        counts[part] += int(count)
    return counts


def print_parts(directory: str, transport: str) -> dict[str, float]:
    files = sorted(Path(directory).glob(f"storm-{transport}-*.txt"))
    if not files:
        return {}
    counts = parts(files[-1])
    total = sum(counts.values()) or 1
    shares = {name: round(100 * n / total, 1) for name, n in counts.most_common()}
    print(f"  where {transport} connects went (share of samples):")
    for name, share in shares.items():
        print(f"    {share:5.1f}%  {name}")
    return shares


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.connect_storm", description=__doc__)
    parser.add_argument("--clients", type=int, default=1000, help="connects per burst")
    parser.add_argument("--concurrency", type=int, default=200, help="connects in flight")
    parser.add_argument("--runs", type=int, default=1, help="bursts per transport (median)")
    parser.add_argument(
        "--transports", default=",".join(TRANSPORTS), help=f"any of {','.join(TRANSPORTS)}"
    )
    parser.add_argument("--database-url", default="", help="a PostgreSQL server to use")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the server into DIR")
    parser.add_argument("--json", metavar="PATH", help="write the figures as JSON")
    args = parser.parse_args(argv)
    transports = args.transports.split(",")
    if not set(transports) <= set(TRANSPORTS) or args.clients < 1 or args.runs < 1:
        parser.error(f"--transports takes {','.join(TRANSPORTS)}; --clients, --runs >= 1")
    if args.profile and py_spy() is None:
        parser.error("--profile needs py-spy (pip install py-spy)")
    args.transports = transports
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    results: dict[str, Any] = {"clients": args.clients, "concurrency": args.concurrency}
    with BenchEnv(database_url=args.database_url) as env:
        results["database"] = "postgresql" if env.is_postgres else "sqlite"
        world = make_world(env, args.clients)
        for transport in args.transports:
            runs = [
                burst(env, world, transport, concurrency=args.concurrency, profile=args.profile)
                for _ in range(args.runs)
            ]
            for run in runs:
                print(json.dumps(run), flush=True)
            summary = {
                "cpu_ms_per_connect": statistics.median(r["cpu_ms_per_connect"] or 0 for r in runs),
                "connects_per_s": statistics.median(r["connects_per_s"] for r in runs),
                "seconds": statistics.median(r["seconds"] for r in runs),
                "failed": sum(r["failed"] for r in runs),
                "runs": runs,
            }
            if args.profile:
                summary["profile"] = print_parts(args.profile, transport)
            results[transport] = summary
    print_summary(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def print_summary(results: dict[str, Any]) -> None:
    print(
        f"\nconnect storm: {results['clients']} clients, {results['concurrency']} at a time, "
        f"{results['database']} (median of runs)"
    )
    stock = results.get("stock", {}).get("cpu_ms_per_connect")
    for transport in TRANSPORTS:
        if transport not in results:
            continue
        r = results[transport]
        ratio = f"  ({r['cpu_ms_per_connect'] / stock:.2f}x stock)" if stock else ""
        print(
            f"  {transport:5}: {r['cpu_ms_per_connect']:6.2f} ms CPU per connect{ratio}, "
            f"{r['connects_per_s']:7.1f} connects/s, all served in {r['seconds']:.2f} s, "
            f"{r['failed']} failed"
        )


if __name__ == "__main__":
    main(sys.argv[1:])
