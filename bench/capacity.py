"""Capacity: tens of thousands of concurrent connections across the server processes of
one 2-core machine, then an announcement to all of them and a message in every room.

    python -m bench.capacity --connections 50000 [--json FILE]   # the issue's run (~15 min)
    python -m bench.capacity --connections 5000                  # ~3 min
    python -m bench.capacity --connections 300 --baseline 100 --room-size 10   # smoke run

Distinct users (bench.env's bulk-created users with sessions), half holding an SSE stream
(`/events/`: their own channels and `announcements`), half an authenticated chat socket
(`/ws/chat/<slug>/`) in public rooms of `--room-size`. Connection i of each kind goes to
server process i % servers (`manage.py serve`'s command line) and to load-client process
i % clients (bench.sse_client and bench.ws_client, `--per-client` sockets each, 10,000 by
default), so every room has members on every server. Connects ramp at `--rate` per second
(and at most 32 in flight per client process), streams first, then sockets.

Two stages in the same run, on the same servers: first `--baseline` connections (default a
tenth), measured, then the rest up to `--connections`, measured again; the per-connection
and per-delivery figures of the two sit side by side with their ratio (1.0 is linear). Per
stage: server RSS before and after each ramp (memory per connection, per SSE stream and
per chat socket), server CPU per connect, the servers' CPU while idle, then
- one announcement through `notifications.services.announcement_publish` (what "Publish
  now" calls): it reaches every SSE stream (chat sockets carry only their room; a browser
  tab gets announcements on its `/events/` stream); latency from just before the call;
- one message in each room through `feeds.services.message_post` (INSERT, commit, Redis,
  each process's hub): every chat socket gets one; latency from just before each post.
For both: delivered and lost (asserted zero: the exit status is 1 otherwise) and p50/p99/max
over every delivery. Then `--bursts` more of each back to back (announcements through the
service, room broadcasts as message_post publishes them), for server CPU per delivery: gross,
and net of the idle rate measured just before (one event's CPU would be lost in the idle
work's noise). Then Redis's PUBLISH rate (bench.redis_publish), and the per-core figures and
sizing on paper (bench.sizing). The load average is printed along the way: the machine is
shared. Everything is torn down at the end.

Why `--servers` defaults to the fewest processes the descriptor limit allows (3 for 50,000,
at least 2): one process per core is what a 2-core machine can keep busy, and each extra
process adds ~80 MB of baseline memory and one more Redis subscriber per event, so the
only reason for a third here is the 20,000-descriptor limit per process (STACK-NOTES).
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
import time
from collections import Counter
from typing import Any

import psutil

from bench import kernel_limits, redis_publish, sizing
from bench.announce import draft, make_staff
from bench.env import SERVERS, BenchEnv, ServerProcess
from bench.ladder import save
from bench.procs import LineProcess, SSELoadClient, wait_for_all
from bench.profile import profiling
from bench.sse_client import percentile
from bench.sse_idle import post_room_messages
from bench.ws_fanout import WSLoadClient

IN_FLIGHT = 32  # connects in flight per load-client process
CHUNK = 2_000  # connects per client per command: progress lines, bounded waits
ROOM_PREFIX = "cap-"
# Long enough for idle work the fan-out pushed back to run; short, because the heartbeats
# of sockets opened together come in waves that a longer span would sample unevenly.
TAIL_SECONDS = 2.0


def load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def split(total: int, room_size: int) -> tuple[int, int]:
    """(SSE streams, chat sockets) for `total` connections: half each, whole rooms."""
    ws = total // 2 // room_size * room_size
    return total - ws, ws


class Fleet:
    """The server processes, their CPU and memory summed, and Redis's CPU."""

    def __init__(self, servers: list[ServerProcess], redis_pid: int) -> None:
        self.servers = servers
        self.redis = psutil.Process(redis_pid)

    def redis_cpu(self) -> float:
        return sum(self.redis.cpu_times()[:2])

    def cpu(self) -> float:
        return sum(s.cpu_seconds() for s in self.servers)

    def rss(self) -> int:
        return sum(s.rss() for s in self.servers)


def idle_rate(fleet: Fleet, seconds: float) -> tuple[float, float]:
    """Cores the servers and Redis use over `seconds` with nothing sent: keep-alives,
    heartbeats, pings. By default one whole period of them (20 s)."""
    cpu0, redis0, wall0 = fleet.cpu(), fleet.redis_cpu(), time.monotonic()
    time.sleep(seconds)
    wall = time.monotonic() - wall0
    return (fleet.cpu() - cpu0) / wall, (fleet.redis_cpu() - redis0) / wall


def ramp(
    clients: list[LineProcess],
    servers: list[ServerProcess],
    *,
    kind: str,
    sessions: list[str],
    first: int,
    last: int,
    rate: float,
    paths: list[str] | None = None,
) -> dict[str, Any]:
    """Open connections [first, last) of one kind: connection i from client i % clients to
    server i % servers, at `rate` per second in all; bounded chunks, progress printed."""
    k = len(clients)
    opened = failed = 0
    started = time.monotonic()
    per_client_rate = rate / k
    for lo in range(first, last, CHUNK * k):
        hi = min(last, lo + CHUNK * k)
        for c, client in enumerate(clients):
            mine = [i for i in range(lo, hi) if i % k == c]
            if not mine:
                continue
            command: dict[str, Any] = {
                "cmd": "connect",
                "port": servers[0].port,
                "path": "/events/",
                "sessions": [sessions[i] for i in mine],
                "ports": [servers[i % len(servers)].port for i in mine],
                "concurrency": IN_FLIGHT,
                "rate": per_client_rate,
            }
            if paths is not None:
                command.update(path=paths[mine[0]], paths=[paths[i] for i in mine], streams=1)
            client.send(**command)
        for c, client in enumerate(clients):
            n = sum(1 for i in range(lo, hi) if i % k == c)
            if n:
                reply = client.answer(120 + 3 * n / per_client_rate, "connect")
                opened, failed = opened + reply["connected"], failed + reply["failed"]
        seconds = time.monotonic() - started
        print(
            f"  {kind}: {first + opened + failed}/{last} ({failed} failed), "
            f"{(opened + failed) / seconds:.0f}/s, load {load()}",
            flush=True,
        )
    seconds = round(time.monotonic() - started, 1)
    return {"opened": opened, "failed": failed, "seconds": seconds, "load": load()}


def pooled(clients: list[LineProcess], first: int, last: int, shift_ms: float) -> dict[str, Any]:
    """Every client's deliveries of seq in [first, last), latencies pooled (minus `shift_ms`)."""
    latencies: list[float] = []
    open_, closed, codes = 0, 0, Counter[str]()
    for client in clients:
        stats = client.ask(120, cmd="stats", first=first, last=last, raw=True)
        latencies += [x - shift_ms for x in stats["latencies_ms"]]
        open_, closed = open_ + stats["open"], closed + stats["closed"]
        codes.update(stats.get("close_codes", {}))  # chat sockets: why they closed
    latencies.sort()
    return {
        "delivered": len(latencies),
        "p50_ms": round(percentile(latencies, 0.50), 1),
        "p99_ms": round(percentile(latencies, 0.99), 1),
        "max_ms": round(latencies[-1], 1) if latencies else None,
        "open": open_,
        "closed": closed,
        "close_codes": dict(codes),
    }


def delivery(
    fleet: Fleet,
    clients: list[LineProcess],
    *,
    send: Any,
    first: int,
    last: int,
    expected: int,
    idle_cores: float,
    tail: float,
) -> dict[str, Any]:
    """Run `send()` (returns the ms to shift latencies by), wait for `expected` deliveries;
    latencies, loss and server CPU per delivery.

    Net CPU is counted until `tail` s after the last delivery, minus the idle rate over that
    whole span: idle work (heartbeats, pings) that the fan-out pushed back runs in the tail,
    so it is taken off instead of being left out of the window and counted as delivery."""
    before = sum(c.ask(30, cmd="count")["received"] for c in clients)
    cpu0, redis0, wall0 = fleet.cpu(), fleet.redis_cpu(), time.monotonic()
    shift_ms = send()
    _, seconds = wait_for_all(clients, before + expected, timeout=120, idle=10)
    cpu = fleet.cpu() - cpu0
    time.sleep(tail)
    span_cpu, span = fleet.cpu() - cpu0, time.monotonic() - wall0
    redis_cpu = fleet.redis_cpu() - redis0
    result = {"expected": expected, **pooled(clients, first, last, shift_ms)}
    result["lost"] = expected - result["delivered"]
    delivered = max(result["delivered"], 1)
    net = max(span_cpu - idle_cores * span, 0.0)
    result.update(
        seconds=round(seconds, 2),
        server_cpu_s=round(cpu, 3),
        redis_cpu_s=round(redis_cpu, 3),
        cpu_us_per_delivery=round(cpu / delivered * 1e6, 1),
        net_cpu_us_per_delivery=round(net / delivered * 1e6, 1),
        deliveries_per_core_s=round(delivered / net) if net else None,
        load=load(),
    )
    return result


def show(what: str, d: dict[str, Any]) -> None:
    b = d["burst"]
    lost = d["lost"] + b["lost"]
    verdict = "0 lost" if lost == 0 else f"LOST {d['lost']} + {b['lost']} in the burst"
    print(
        f"{what}: {d['delivered']}/{d['expected']} ({verdict}), p50 {d['p50_ms']} ms, "
        f"p99 {d['p99_ms']} ms, max {d['max_ms']} ms; a burst of {b['expected']}: server CPU "
        f"{b['cpu_us_per_delivery']} µs per delivery ({b['net_cpu_us_per_delivery']} net of "
        f"idle, {b['deliveries_per_core_s']} deliveries/s per core); {d['closed']} closed "
        f"{d['close_codes'] or ''}; "
        f"load {d['load']}",
        flush=True,
    )


def run_stage(ctx: dict[str, Any], target: int, previous: dict[str, Any] | None, seq: int):
    """Ramp up to `target` connections in all, then measure idle cost and both deliveries."""
    args, fleet = ctx["args"], ctx["fleet"]
    n_sse, n_ws = split(target, args.room_size)
    had_sse, had_ws = (previous["sse"], previous["ws"]) if previous else (0, 0)
    print(f"\n== stage: {n_sse} SSE + {n_ws} chat sockets ({target}), load {load()}", flush=True)
    rss0, cpu0, t0 = fleet.rss(), fleet.cpu(), time.monotonic()
    sse = ramp(
        ctx["sse_clients"],
        fleet.servers,
        kind="SSE",
        sessions=ctx["sse_sessions"],
        first=had_sse,
        last=n_sse,
        rate=args.rate,
    )
    time.sleep(args.settle)
    rss1 = fleet.rss()
    sse_idle_cores, _ = idle_rate(fleet, args.idle)
    cpu1, t1 = fleet.cpu(), time.monotonic()
    ws = ramp(
        ctx["ws_clients"],
        fleet.servers,
        kind="WS",
        sessions=ctx["ws_sessions"],
        first=had_ws,
        last=n_ws,
        rate=args.rate,
        paths=ctx["ws_paths"],
    )
    time.sleep(args.settle)
    rss2, cpu2, t2 = fleet.rss(), fleet.cpu(), time.monotonic()
    with profiling(fleet.servers[0], args.profile, f"capacity-idle-{target}"):
        idle_cores, redis_idle_cores = idle_rate(fleet, args.idle)
    added = (n_sse - had_sse) + (n_ws - had_ws)
    kb = 1024
    # The connections already open kept the servers busy during a ramp: take off the idle
    # rate per connection times those held on average (an estimate: the mix's rate).
    idle_each = idle_cores / (n_sse + n_ws)
    ws_each = (idle_cores - sse_idle_cores) / max(n_ws - had_ws, 1)
    sse_each = (sse_idle_cores - had_ws * ws_each) / max(n_sse, 1)
    sse_idle = idle_each * (had_sse + had_ws + (n_sse - had_sse) / 2) * (t1 - t0)
    ws_idle = idle_each * (n_sse + had_ws + (n_ws - had_ws) / 2) * (t2 - t1)
    stage: dict[str, Any] = {
        "connections": n_sse + n_ws,
        "sse": n_sse,
        "ws": n_ws,
        "ramp": {"sse": sse, "ws": ws},
        "failed": sse["failed"] + ws["failed"],
        "rss_mb": round(rss2 / 2**20, 1),
        "rss_per_conn_kb": round((rss2 - ctx["rss_start"]) / (n_sse + n_ws) / kb, 1),
        "rss_per_added_conn_kb": round((rss2 - rss0) / max(added, 1) / kb, 1),
        "rss_per_sse_kb": round((rss1 - rss0) / max(n_sse - had_sse, 1) / kb, 1),
        "rss_per_ws_kb": round((rss2 - rss1) / max(n_ws - had_ws, 1) / kb, 1),
        "sse_connect_cpu_ms": round((cpu1 - cpu0) / max(sse["opened"], 1) * 1000, 2),
        "ws_connect_cpu_ms": round((cpu2 - cpu1) / max(ws["opened"], 1) * 1000, 2),
        "sse_connect_net_cpu_ms": round(
            max(cpu1 - cpu0 - sse_idle, 0) / max(sse["opened"], 1) * 1000, 2
        ),
        "ws_connect_net_cpu_ms": round(
            max(cpu2 - cpu1 - ws_idle, 0) / max(ws["opened"], 1) * 1000, 2
        ),
        "idle_cores": round(idle_cores, 3),
        "idle_cores_per_10k": round(idle_cores / (n_sse + n_ws) * 10_000, 3),
        # Per kind: measured before the stage's sockets opened, and the sockets by difference.
        "idle_cores_per_10k_sse": round(sse_each * 10_000, 3),
        "idle_cores_per_10k_ws": round(ws_each * 10_000, 3),
        "redis_idle_cores": round(redis_idle_cores, 3),
    }
    print(
        f"servers' RSS {rss0 / 2**20:.0f} -> {rss1 / 2**20:.0f} (SSE) -> {rss2 / 2**20:.0f} MB "
        f"(WS): {stage['rss_per_conn_kb']} KB per connection (SSE {stage['rss_per_sse_kb']}, "
        f"WS {stage['rss_per_ws_kb']} KB); connect CPU SSE {stage['sse_connect_cpu_ms']} ms, "
        f"WS {stage['ws_connect_cpu_ms']} ms (net of idle {stage['sse_connect_net_cpu_ms']}, "
        f"{stage['ws_connect_net_cpu_ms']} ms); idle: {idle_cores:.2f} cores (Redis "
        f"{redis_idle_cores:.2f}); per 10,000: SSE {stage['idle_cores_per_10k_sse']}, chat "
        f"{stage['idle_cores_per_10k_ws']} cores",
        flush=True,
    )

    measure_deliveries(ctx, stage, seq=seq, idle_cores=idle_cores)
    return stage


def publish_announcements(staff: Any, seqs: range) -> float:
    """Publish one announcement per seq back to back, as "Publish now" does; returns the ms
    between the first's creation (its `t`) and its publish, to take off its latencies."""
    from notifications.services import announcement_publish

    drafts = [draft(seq, staff) for seq in seqs]
    start = time.time()
    for announcement, _ in drafts:
        if not announcement_publish(announcement=announcement, by=staff):
            raise RuntimeError("announcement_publish refused a draft")
    return (start - drafts[0][1]) * 1000


def broadcast_rounds(rooms: list[Any], first: int, rounds: int) -> float:
    """`rounds` messages to every room, published as message_post publishes after its commit
    (the INSERT runs in this process, not the servers, so it costs them nothing)."""
    from feeds.events import message_broadcast_on_commit

    for r in range(rounds):
        for i, room in enumerate(rooms):
            seq = first + r * len(rooms) + i
            # `id` as message_post's data has one: it is also the room's SSE event id.
            data = {"id": seq, "seq": seq, "t": time.time(), "content": "cpu"}
            message_broadcast_on_commit(room_id=room.pk, data=data)
    return 0.0


CPU_KEYS = (
    "seconds",
    "server_cpu_s",
    "redis_cpu_s",
    "cpu_us_per_delivery",
    "net_cpu_us_per_delivery",
    "deliveries_per_core_s",
    "expected",
    "delivered",
    "lost",
)


def measure_deliveries(
    ctx: dict[str, Any], stage: dict[str, Any], *, seq: int, idle_cores: float
) -> None:
    """One announcement and one message per room for latency and loss; then `--bursts` of
    each back to back for CPU per delivery (one event's CPU is lost in the idle work's)."""
    args, fleet = ctx["args"], ctx["fleet"]
    n_sse, n_ws, k = stage["sse"], stage["ws"], args.bursts
    rooms = ctx["rooms"][: n_ws // args.room_size]
    common = {"idle_cores": idle_cores, "tail": min(args.settle, TAIL_SECONDS)}
    sse, ws = ctx["sse_clients"], ctx["ws_clients"]
    one = delivery(
        fleet,
        sse,
        first=seq,
        last=seq + 1,
        expected=n_sse,
        **common,
        send=lambda: publish_announcements(ctx["staff"], range(seq, seq + 1)),
    )
    burst = delivery(
        fleet,
        sse,
        first=seq + 1,
        last=seq + 1 + k,
        expected=k * n_sse,
        **common,
        send=lambda: publish_announcements(ctx["staff"], range(seq + 1, seq + 1 + k)),
    )
    stage["announcement"] = {**one, "burst": {key: burst[key] for key in CPU_KEYS}}
    show(f"announcement -> {n_sse} SSE streams", stage["announcement"])
    first = seq + 1 + k

    def post() -> float:
        stage["slowest_post_ms"] = post_room_messages(rooms, ctx["author"], first)
        return 0.0

    one = delivery(
        fleet, ws, send=post, first=first, last=first + len(rooms), expected=n_ws, **common
    )
    first += len(rooms)
    burst = delivery(
        fleet,
        ws,
        first=first,
        last=first + k * len(rooms),
        expected=k * n_ws,
        send=lambda: broadcast_rounds(rooms, first, k),
        **common,
    )
    stage["rooms"] = {**one, "burst": {key: burst[key] for key in CPU_KEYS}}
    show(f"a message in each of {len(rooms)} rooms -> {n_ws} sockets", stage["rooms"])
    print(f"  (the slowest post, INSERT and commit: {stage['slowest_post_ms']} ms)", flush=True)


RATIOS = (
    ("rss_per_conn_kb",),
    ("rss_per_added_conn_kb",),
    ("rss_per_sse_kb",),
    ("rss_per_ws_kb",),
    ("sse_connect_net_cpu_ms",),
    ("ws_connect_net_cpu_ms",),
    ("idle_cores_per_10k",),
    ("idle_cores_per_10k_sse",),
    ("idle_cores_per_10k_ws",),
    ("announcement", "p99_ms"),
    ("announcement", "burst", "net_cpu_us_per_delivery"),
    ("rooms", "p99_ms"),
    ("rooms", "burst", "net_cpu_us_per_delivery"),
)


def ratios(base: dict[str, Any], full: dict[str, Any]) -> dict[str, Any]:
    """Full stage over baseline stage, per figure: 1.0 is linear scaling."""
    out = {}
    for path in RATIOS:
        a, b = base, full
        for part in path:
            a, b = a[part], b[part]
        out[".".join(path)] = {"baseline": a, "full": b, "ratio": round(b / a, 2) if a else None}
    return out


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--connections", type=int, default=50_000, help="in all, half each kind")
    parser.add_argument("--baseline", type=int, help="the first stage (default: a tenth)")
    parser.add_argument("--servers", type=int, help="server processes (default: see above)")
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument("--room-size", type=int, default=100)
    parser.add_argument("--rate", type=float, default=300, help="connects/s in all")
    parser.add_argument(
        "--per-client", type=int, default=10_000, help="sockets per load-client process"
    )
    parser.add_argument("--settle", type=float, default=5.0, help="s to wait after each ramp")
    parser.add_argument("--idle", type=float, default=20.0, help="s to measure idle CPU over")
    parser.add_argument("--profile", metavar="DIR", help="py-spy a server while idle")
    parser.add_argument(
        "--size-for", default="100000,1000000", help="concurrent users to size on paper for"
    )
    parser.add_argument("--publishes", type=int, default=200_000, help="for Redis's rate")
    parser.add_argument(
        "--bursts", type=int, default=4, help="events per kind back to back, for CPU per delivery"
    )
    parser.add_argument("--json", help="write results here instead of bench/results/")
    args = parser.parse_args(argv)
    if args.connections < 2 * args.room_size:
        parser.error("--connections must hold at least one room of --room-size sockets")
    if args.baseline is None:
        args.baseline = args.connections // 10
    if (
        not 0 <= args.baseline < args.connections
        or min(args.rate, args.per_client, args.bursts) <= 0
    ):
        parser.error(
            "--baseline must be below --connections; --rate, --per-client, --bursts above 0"
        )
    try:
        args.size_for = [int(n) for n in args.size_for.split(",")]
    except ValueError:
        parser.error("--size-for takes user counts separated by commas")
    if args.servers is None:
        per_process = kernel_limits.sockets_per_process()
        args.servers = max(2, math.ceil(args.connections / per_process))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    n_sse, n_ws = split(args.connections, args.room_size)
    k_sse, k_ws = math.ceil(n_sse / args.per_client), math.ceil(n_ws / args.per_client)
    limits = kernel_limits.check(
        connections=args.connections,
        servers=args.servers,
        per_client=math.ceil(max(n_sse / k_sse, n_ws / k_ws)),
        in_flight=IN_FLIGHT * (k_sse + k_ws),
    )
    print(
        f"{args.connections} connections ({n_sse} SSE, {n_ws} chat in rooms of "
        f"{args.room_size}) over {args.servers} {args.server} processes, {k_sse} + {k_ws} "
        f"load clients; limits {limits}; load {load()}",
        flush=True,
    )
    started = time.time()
    stages: list[dict[str, Any]] = []
    with BenchEnv() as env:
        from django.contrib.auth.models import User

        from feeds.models import Room

        print(f"creating {args.connections} users with sessions", flush=True)
        ctx: dict[str, Any] = {"args": args}
        ctx["sse_sessions"] = [key for _, key in env.create_users(n_sse, prefix="sse")]
        ctx["ws_sessions"] = [key for _, key in env.create_users(n_ws, prefix="ws")]
        n_rooms = n_ws // args.room_size
        ctx["rooms"] = [
            Room.objects.create(slug=f"{ROOM_PREFIX}{i}", title=f"Capacity {i}")
            for i in range(n_rooms)
        ]
        ctx["ws_paths"] = [f"/ws/chat/{ROOM_PREFIX}{i // args.room_size}/" for i in range(n_ws)]
        ((author_id, _),) = env.create_users(1, prefix="poster")
        ctx["author"] = User.objects.get(pk=author_id)
        ctx["staff"], _ = make_staff(env)
        servers = [
            env.start_server(args.server, label=f"capacity-{i}") for i in range(args.servers)
        ]
        ctx["fleet"] = fleet = Fleet(servers, env.redis.process.pid)
        clients: list[LineProcess] = []
        try:
            ctx["sse_clients"] = [SSELoadClient(env) for _ in range(k_sse)]
            clients += ctx["sse_clients"]
            ctx["ws_clients"] = [WSLoadClient(env) for _ in range(k_ws)]
            clients += ctx["ws_clients"]
            time.sleep(args.settle)
            ctx["rss_start"] = fleet.rss()
            previous = None
            for i, target in enumerate(t for t in (args.baseline, args.connections) if t):
                try:
                    previous = run_stage(ctx, target, previous, seq=10**12 + i * 10**6)
                except TimeoutError as exc:
                    raise SystemExit(
                        f"FAILED: {exc}: the servers stopped keeping up (their idle work, "
                        "see docs/performance.md#capacity); stages done: "
                        f"{[s['connections'] for s in stages]}"
                    ) from None
                stages.append(previous)
            publish = redis_publish.measure(
                str(env.redis.socket_path),
                env.redis.process.pid,
                subscribers=args.servers,
                count=args.publishes,
            )
            print(
                f"\nRedis: {publish['publishes_per_s']} PUBLISH/s to {args.servers} "
                f"subscribers ({publish['payload_bytes']} B), "
                f"{publish['publishes_per_redis_cpu_s']} per Redis CPU-second",
                flush=True,
            )
        finally:
            for client in clients:
                client.stop()
            t0 = time.monotonic()
            for server in env.servers:  # SIGINT: at once, without realtime.drain's 10 s spread
                server.process.send_signal(signal.SIGINT)
            for server in list(env.servers):
                env.stop_server(server)
            print(f"servers stopped in {time.monotonic() - t0:.1f} s", flush=True)
    base_rss_mb = ctx["rss_start"] / 2**20 / args.servers
    return report(args, stages, publish, limits, started, base_rss_mb)


def per_core(stage: dict[str, Any], publish: dict[str, Any]) -> dict[str, Any]:
    """What one core does, from the stage's CPU figures (the sizing arithmetic's inputs)."""

    def per(value: float) -> int | None:
        return round(1 / value) if value else None

    idle = stage["idle_cores"]
    return {
        "connections_held_idle": round(stage["connections"] / idle) if idle else None,
        "sse_connects_s": per(stage["sse_connect_net_cpu_ms"] / 1000),
        "chat_connects_s": per(stage["ws_connect_net_cpu_ms"] / 1000),
        "announcement_deliveries_s": stage["announcement"]["burst"]["deliveries_per_core_s"],
        "room_deliveries_s": stage["rooms"]["burst"]["deliveries_per_core_s"],
        "redis_publishes_s": publish["publishes_per_redis_cpu_s"],
    }


def report(
    args: argparse.Namespace,
    stages: list[dict[str, Any]],
    publish: dict[str, Any],
    limits: dict[str, str],
    started: float,
    base_rss_mb: float,
) -> dict[str, Any]:
    full = stages[-1]
    lost = sum(
        s[k]["lost"] + s[k]["burst"]["lost"] for s in stages for k in ("announcement", "rooms")
    )
    failed = sum(s["failed"] for s in stages)
    closed = full["announcement"]["closed"] + full["rooms"]["closed"]
    result: dict[str, Any] = {
        "benchmark": "capacity",
        "args": vars(args),
        "limits": limits,
        "started": started,
        "seconds": round(time.time() - started, 1),
        "stages": stages,
        "redis_publish": publish,
        "lost": lost,
        "failed_connects": failed,
        "closed": closed,
        "per_core": per_core(full, publish),
        "base_rss_mb_per_process": round(base_rss_mb, 1),
        "sizing": [sizing.plan(full, publish, base_rss_mb, n) for n in args.size_for],
    }
    print(
        "\nper core, from the full stage: "
        + ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in result["per_core"].items())
    )
    if len(stages) == 2:
        result["ratios"] = ratios(stages[0], full)
        print(
            f"\n== {stages[0]['connections']} -> {full['connections']} connections "
            "(full / baseline; 1.0 is linear)"
        )
        for name, r in result["ratios"].items():
            print(f"{name:<40} {r['baseline']!s:>10} {r['full']!s:>10} {r['ratio']!s:>6}")
    sizing.show(result["sizing"])
    verdict = "every connection received" if lost == failed == closed == 0 else "FAILED"
    print(f"\nlost: {lost}, failed connects: {failed}, closed: {closed} -> {verdict}")
    print(f"results: {save('capacity', result, args.json)}")
    return result


if __name__ == "__main__":
    outcome = main(sys.argv[1:])
    sys.exit(0 if outcome["lost"] == outcome["failed_connects"] == outcome["closed"] == 0 else 1)
