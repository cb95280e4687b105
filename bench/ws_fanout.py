"""WebSocket chat fan-out: N authenticated receivers in one room, ours against stock.

    python -m bench.ws_fanout --quick                 # < 2 min: 1,000 receivers, daphne
    python -m bench.ws_fanout                         # full ladder, 3 repeats, medians
    python -m bench.ws_fanout --servers daphne,uvicorn
    python -m bench.ws_fanout --clients 20 --rates 5 --stock-rates 1 --step-seconds 1 \\
        --repeat 1 --no-light                         # a smoke run (tests/bench)
    python -m bench.ws_fanout --quick --no-stock --profile /tmp/prof   # py-spy the server
    python -m bench.ws_fanout --quick --targets ours,before --baseline-ref eed7550 \\
        --servers daphne,daphne-plain     # this code against an earlier commit, same run
    python -m bench.ws_fanout --quick --targets ours,before --baseline-ref 02e1110 \\
        --mix 0.1          # issue 17: 10 % edits/deletes/reactions against plain messages

Everything runs on loopback in a throwaway world (bench.env: Redis, SQLite, users with
sessions). Receivers live in a separate load-client process (bench.ws_client); a sender
process (bench.ws_sender) posts chat messages through real sockets at each step's rate,
round-robin over a few users so the per-user rate limit never bites, with `seq` and the
send time in each message. Latency is that time to the receiver's time.time() on
receipt (same clock). Per step it prints offered and delivered deliveries/s, p50/p95/p99,
loss, server CPU and RSS and the load client's CPU; per target the RSS per idle
connection and the best sustained rate (zero loss, p99 <= 250 ms; and <= 1 s).

With --mix F, F of the `ours` sender's frames are edits, deletes and reactions (in turn)
on its own earlier messages; every frame a receiver gets counts as a delivery (broadcast,
message_edited, message_deleted, reaction), loss is checked per type, latency is the
messages'. Other targets send plain messages, so `before` is the fan-out without them;
the summary adds ours' p99 over before's at each offered rate.

Targets, each in a fresh server process:
- ours:  config.asgi (the Pulse channel layer: one Redis subscription per process, frames
         encoded once and written to each local socket);
- stock: bench.stock_asgi, the Channels tutorial's consumer with a channel-layer group,
         on stock daphne (`python -m daphne`, same options) or uvicorn;
- light: ours with 100 receivers at 10 messages/s (the latency target);
- before: ours as of --baseline-ref (a git worktree of that commit, same venv, world and
          command), so a change is measured against the code before it in one run.
Servers: daphne and uvicorn as `manage.py serve` runs them, and daphne-plain:
`daphne config.asgi:application` as the Channels and daphne docs start it.
The ratio printed is ours (p99 <= 250 ms) over stock (p99 <= 1 s, the issue's baseline;
its highest zero-loss rate when it never meets that). JSON goes to bench/results/.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench.env import (
    PLAIN_DAPHNE,
    ROOT,
    SERVERS,
    BenchEnv,
    ServerProcess,
    free_port,
    raise_fd_limit,
    server_command,
)
from bench.ladder import (
    FAIL_P99_MS,
    HEADER,
    P99_LIMIT_MS,
    Ladder,
    best_sustained,
    measure_idle_rss,
    median,
    print_step,
    save,
)
from bench.procs import LineProcess, SSELoadClient
from bench.profile import profiling

OURS_APP = "config.asgi:application"
STOCK_APP = "bench.stock_asgi:application"
DAPHNE_LAUNCHER = "config.daphne_server"
ROOM = "bench"
PATH = f"/ws/chat/{ROOM}/"
QUICK_RATES = [10, 20, 30, 40, 50, 60]
FULL_RATES = [5, 10, 20, 30, 40, 50, 60, 70, 80]
STOCK_RATES = [0.5, 1, 2, 4, 8]
STOCK_STOP_P99_MS = 5000.0  # the stock ladder goes on past 1 s to find its ceiling
LIGHT_CLIENTS, LIGHT_RATE = 100, 10.0
PER_SENDER_RATE = 4.0  # messages/s per sender user, under the 5/s refill of feeds.ratelimit
# bench.ws_sender's --mix frame -> the frame every receiver gets for it.
MIX_FRAMES = {"edit": "message_edited", "delete": "message_deleted", "react": "reaction"}


# ---------------------------------------------------------------- processes


@contextlib.contextmanager
def baseline_tree(ref: str | None) -> Iterator[Path | None]:
    """A detached git worktree of `ref` (removed afterwards), or None."""
    if ref is None:
        yield None
        return
    path = Path(tempfile.mkdtemp(prefix="rtbench-baseline-")) / "tree"
    subprocess.run(
        ["git", "worktree", "add", "--detach", str(path), ref], cwd=ROOT, check=True,
        capture_output=True,
    )  # fmt: skip
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "worktree", "remove", "--force", str(path)], cwd=ROOT, capture_output=True
        )
        shutil.rmtree(path.parent, ignore_errors=True)


def start_ws_server(
    env: BenchEnv, kind: str, *, app: str, label: str, cwd: Path = ROOT
) -> ServerProcess:
    """bench.env's server, serving `app` instead of config.asgi (bench.env has no hook).
    The stock app gets stock daphne: our launcher's send path (realtime.daphne_ws) is part
    of ours, and would otherwise speed up the baseline too."""
    port = free_port()
    command = server_command(kind, port)
    if command[-1] != OURS_APP:
        raise RuntimeError(f"unexpected server command: {command}")
    if app == STOCK_APP and DAPHNE_LAUNCHER in command:
        command[command.index(DAPHNE_LAUNCHER)] = "daphne"
    command[-1] = app
    log_path = env.dir / f"{label}-{port}.log"
    log = open(log_path, "ab")  # noqa: SIM115 - the child holds it; removed with the dir
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=dict(os.environ, **env.base_env()),
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=raise_fd_limit,
    )
    server = ServerProcess(kind, port, process, log_path, label)
    env.servers.append(server)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{label} exited at start:\n{server.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return server
        except OSError:
            time.sleep(0.05)
    env.stop_server(server)
    raise RuntimeError(f"{label} did not listen on {port} within 60 s")


class WSLoadClient(LineProcess):
    """bench.ws_client in its own process (the receivers)."""

    wait_for = SSELoadClient.wait_for

    def __init__(self, env: BenchEnv) -> None:
        super().__init__("bench.ws_client", dict(os.environ, **env.base_env()))

    def connect(
        self, *, port: int, sessions: list[str], streams: int, deflate: bool = False
    ) -> dict[str, Any]:
        timeout = 60 + len(sessions) * 0.05
        return self.ask(
            timeout, cmd="connect", port=port, path=PATH, sessions=sessions, streams=streams,
            deflate=deflate,
        )  # fmt: skip

    def count(self) -> dict[str, Any]:
        return self.ask(30, cmd="count")

    def stats(self, first: int, last: int) -> dict[str, Any]:
        return self.ask(60, cmd="stats", first=first, last=last)


class WSSender(LineProcess):
    """bench.ws_sender in its own process."""

    def __init__(self, env: BenchEnv) -> None:
        super().__init__("bench.ws_sender", dict(os.environ, **env.base_env()))

    def connect(self, *, port: int, sessions: list[str]) -> dict[str, Any]:
        return self.ask(60, cmd="connect", port=port, path=PATH, sessions=sessions)

    def run(self, **step: Any) -> dict[str, Any]:
        """Send one step (see bench.ws_sender's publish)."""
        budget = step["count"] / max(step["rate"], 0.001) + 60
        return self.ask(budget, cmd="publish", **step)


# ---------------------------------------------------------------- one ladder


def run_steps(
    *,
    server: ServerProcess,
    client: WSLoadClient,
    sender: WSSender,
    ladder: Ladder,
    receivers: int,
    first_seq: int,
    stop_p99_ms: float = FAIL_P99_MS,
    mix: float = 0,
) -> tuple[list[dict[str, Any]], int]:
    """Send each step, wait for delivery, collect the numbers; stop at loss or slow p99.
    With `mix`, edits, deletes and reactions count as deliveries too, and loss is checked
    per frame type (latency is the messages')."""
    from feeds.protocol import REACTIONS  # Django is set up by now (bench.env)

    steps = []
    seq = first_seq
    for rate in ladder.rates:
        count = max(1, round(rate * ladder.step_seconds))
        expected = count * receivers
        before = client.count()["received"]
        cpu0, client_cpu0 = server.cpu_seconds(), client.cpu_seconds()
        sender_cpu0, wall0 = sender.cpu_seconds(), time.monotonic()
        sent = sender.run(
            rate=rate, count=count, first=seq, pad=ladder.pad, mix=mix, emoji=REACTIONS
        )
        messages = sent["messages"]
        _, seconds = client.wait_for(before + expected, timeout=60, idle=3)
        wall = max(time.monotonic() - wall0, 1e-6)
        # The delivery window: the step's nominal length, or longer if sending or
        # delivery took longer; so a step never delivers more than it offered.
        window = max(count / rate, sent["seconds"], seconds)
        stats = client.stats(seq, seq + messages)
        loss = {"message": messages * receivers - stats["delivered"]}
        for kind, frame in MIX_FRAMES.items():
            loss[frame] = sent["changes"].get(kind, 0) * receivers - stats["changes"].get(frame, 0)
        delivered = stats["delivered"] + sum(stats["changes"].values())
        step = {
            "rate_msgs_s": rate,
            "rate_events_s": rate,  # bench.ladder.print_step's name for it
            "messages": count,
            "receivers": receivers,
            "offered_deliveries_s": round(rate * receivers),
            "send_seconds": sent["seconds"],
            "delivered_deliveries_s": round(delivered / window),
            "expected": expected,
            "delivered": delivered,
            # Missing deliveries of each type (an extra of one type hides no loss of another).
            "loss": sum(max(0, n) for n in loss.values()),
            "loss_by_type": loss,
            "changes_sent": sent["changes"],
            "sender_refused": sent["refused"],
            "p50_ms": stats["p50_ms"],
            "p95_ms": stats["p95_ms"],
            "p99_ms": stats["p99_ms"],
            "max_ms": stats["max_ms"],
            "server_cpu_pct": round(100 * (server.cpu_seconds() - cpu0) / wall, 1),
            "server_rss_mb": round(server.rss() / 2**20, 1),
            "client_cpu_pct": round(100 * (client.cpu_seconds() - client_cpu0) / wall, 1),
            "sender_cpu_pct": round(100 * (sender.cpu_seconds() - sender_cpu0) / wall, 1),
            "open": stats["open"],
            "close_codes": stats["close_codes"],
            "gaps": stats["gaps"],
            "duplicates": stats["duplicates"],
            "sender_late_s": sent["late_s"],
        }
        step["ok"] = step["loss"] == 0 and step["p99_ms"] <= P99_LIMIT_MS
        steps.append(step)
        print_step(step)
        seq += messages
        if step["loss"] > 0 or not step["p99_ms"] <= stop_p99_ms:
            break
    return steps, seq


def zero_loss_max(steps: list[dict[str, Any]]) -> int:
    return max((s["delivered_deliveries_s"] for s in steps if s["loss"] == 0), default=0)


def run_target(
    env: BenchEnv,
    receivers: list[str],
    senders: list[str],
    *,
    kind: str,
    target: str,
    ladder: Ladder,
    profile: str | None = None,
    deflate: bool = False,
    baseline: Path | None = None,
    mix: float = 0,
) -> dict[str, Any]:
    stock = target == "stock"
    mix = mix if target == "ours" else 0  # `before` and stock: the plain message workload
    label = f"{target}-{kind}"
    edits = f", {mix:.0%} edits/deletes/reactions" if mix else ""
    print(f"\n== {label}: {len(receivers)} receivers in one room{edits}", flush=True)
    cwd = baseline if target == "before" and baseline is not None else ROOT
    app = STOCK_APP if stock else OURS_APP
    server = start_ws_server(env, kind, app=app, label=label, cwd=cwd)
    client = WSLoadClient(env)
    sender = WSSender(env)
    try:
        idle = measure_idle_rss(
            server,
            lambda: client.connect(
                port=server.port, sessions=receivers, streams=len(senders), deflate=deflate
            ),
        )
        print(
            f"connected {idle['connected']} (failed {idle['failed']}, "
            f"{idle['deflate']} compressed) in {idle['seconds']} s; "
            f"RSS {idle['rss_before_mb']} -> {idle['rss_after_mb']} MB, "
            f"{idle['rss_per_conn_kb']} KB per idle connection",
            flush=True,
        )
        sender.connect(port=server.port, sessions=senders)
        count = idle["connected"]
        # Warm-up: one message end to end, so first-use costs are not measured.
        _, seq = run_steps(
            server=server, client=client, sender=sender, ladder=Ladder([1], 1, ladder.pad),
            receivers=count, first_seq=1, stop_p99_ms=math.inf,
        )  # fmt: skip
        print(HEADER, flush=True)
        with profiling(server, profile, label):
            steps, _ = run_steps(
                server=server, client=client, sender=sender, ladder=ladder, receivers=count,
                first_seq=seq, stop_p99_ms=STOCK_STOP_P99_MS if stock else FAIL_P99_MS, mix=mix,
            )  # fmt: skip
    finally:
        sender.stop()
        client.stop()
        env.stop_server(server)
    return {
        "label": label,
        "server": kind,
        "target": target,
        "mix": mix,
        "receivers": len(receivers),
        "idle": idle,
        "steps": steps,
        "sustained_p99_250ms": best_sustained(steps, P99_LIMIT_MS),
        "sustained_p99_1s": best_sustained(steps, FAIL_P99_MS),
        "zero_loss_max": zero_loss_max(steps),
    }


# ---------------------------------------------------------------- summary


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians per target across repeats; ours/stock ratios per server."""
    by_label: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        by_label.setdefault(run["label"], []).append(run)
    summary: dict[str, Any] = {}
    for label, group in by_label.items():
        entry = {
            "repeats": len(group),
            "sustained_p99_250ms": median([r["sustained_p99_250ms"] for r in group]),
            "sustained_p99_1s": median([r["sustained_p99_1s"] for r in group]),
            "zero_loss_max": median([r["zero_loss_max"] for r in group]),
            "rss_per_conn_kb": median([r["idle"]["rss_per_conn_kb"] for r in group]),
            "connect_seconds": median([r["idle"]["seconds"] for r in group]),
        }
        at_20k = [_p50_near(r["steps"], P50_AT_DELIVERIES) for r in group]
        entry["p50_ms_at_20k"] = median([p for p in at_20k if p is not None] or [0])
        entry["p99_ms_by_rate"] = _p99_by_rate(group)
        if group[0]["target"] == "light":
            entry["p50_ms"] = median([r["steps"][0]["p50_ms"] for r in group if r["steps"]])
            entry["p99_ms"] = median([r["steps"][0]["p99_ms"] for r in group if r["steps"]])
        summary[label] = entry
    for kind in (*SERVERS, PLAIN_DAPHNE):
        ours, before = summary.get(f"ours-{kind}"), summary.get(f"before-{kind}")
        if ours and before and before["sustained_p99_250ms"]:
            ours["ratio_vs_before"] = round(
                ours["sustained_p99_250ms"] / before["sustained_p99_250ms"], 2
            )
        if ours and before:
            ours["p99_vs_before"] = _p99_ratios(ours["p99_ms_by_rate"], before["p99_ms_by_rate"])
        ours, stock = summary.get(f"ours-{kind}"), summary.get(f"stock-{kind}")
        if ours and stock:
            # Stock never meets p99 <= 250 ms with 1,000 receivers (one message takes longer
            # than that to reach them all): its baseline is the issue's, p99 <= 1 s.
            base = stock["sustained_p99_1s"] or stock["zero_loss_max"]
            stock["baseline"] = base
            ours["ratio_vs_stock"] = round(ours["sustained_p99_250ms"] / base, 1) if base else None
            ours["ratio_p99_1s"] = round(ours["sustained_p99_1s"] / base, 1) if base else None
    return summary


# The latency point: 1,000 receivers at 20 messages/s.
P50_AT_DELIVERIES = 20_000


def _p50_near(steps: list[dict[str, Any]], deliveries: int) -> float | None:
    """p50 of the zero-loss step whose offered deliveries/s are closest to `deliveries`."""
    near = [
        s
        for s in steps
        if s["loss"] == 0 and abs(s["offered_deliveries_s"] - deliveries) <= deliveries * 0.1
    ]
    return (
        min(near, key=lambda s: abs(s["offered_deliveries_s"] - deliveries))["p50_ms"]
        if near
        else None
    )


def _p99_by_rate(group: list[dict[str, Any]]) -> dict[str, float]:
    """Median p99 per offered rate (messages/s) over the repeats' zero-loss steps."""
    by_rate: dict[str, list[float]] = {}
    for run in group:
        for step in run["steps"]:
            if step["loss"] == 0:
                by_rate.setdefault(f"{step['rate_msgs_s']:g}", []).append(step["p99_ms"])
    return {rate: median(p99s) for rate, p99s in by_rate.items()}


def _p99_ratios(ours: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    """ours' p99 over before's at each offered rate both ran without loss."""
    return {
        rate: round(ours[rate] / before[rate], 2)
        for rate in ours
        if rate in before and before[rate] > 0
    }


def print_summary(summary: dict[str, Any]) -> None:
    print("\n== summary (medians)")
    print(
        f"{'target':<20} {'0 loss,p99<=250ms':>18} {'0 loss,p99<=1s':>15} {'0 loss max':>11} "
        f"{'KB/conn':>8} {'p50@20k':>8} {'ratio':>12} {'(1 s)':>6}  light p50/p99 ms"
    )
    for label, s in summary.items():
        ratio, same = s.get("ratio_vs_stock") or "", s.get("ratio_p99_1s") or ""
        if "ratio_vs_before" in s:
            ratio = f"{s['ratio_vs_before']}x before"
        light = f"{s['p50_ms']}/{s['p99_ms']}" if "p50_ms" in s else ""
        print(
            f"{label:<20} {s['sustained_p99_250ms']:>18g} {s['sustained_p99_1s']:>15g} "
            f"{s['zero_loss_max']:>11g} {s['rss_per_conn_kb']:>8g} {s['p50_ms_at_20k']:>8g} "
            f"{ratio!s:>12} {same!s:>6}  {light}"
        )
    print(
        "ratio: ours at p99 <= 250 ms over stock at p99 <= 1 s, or over `before` at p99 <= 250"
        " ms; (1 s): both at p99 <= 1 s; p50@20k: p50 ms at ~20,000 deliveries/s"
    )
    for label, s in summary.items():
        if "p99_vs_before" not in s:
            continue
        before = summary[label.replace("ours-", "before-", 1)]["p99_ms_by_rate"]
        print(f"{label} against before, p99 ms at the same offered rate (ours / before = ratio):")
        for rate, ratio in s["p99_vs_before"].items():
            print(
                f"  {rate:>6} msg/s  {s['p99_ms_by_rate'][rate]:>8g} / {before[rate]:<8g} = {ratio}"
            )


# ---------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="short ladders, one repeat")
    parser.add_argument("--clients", type=int, default=1000, help="receivers in the room")
    parser.add_argument("--rates", help="messages/s per step for ours, comma-separated")
    parser.add_argument("--stock-rates", help="messages/s per step for stock")
    parser.add_argument("--step-seconds", type=float)
    parser.add_argument("--repeat", type=int)
    parser.add_argument("--servers", default="daphne", help="daphne,uvicorn")
    parser.add_argument("--targets", default="ours,stock,light", help="ours,stock,light,before")
    parser.add_argument(
        "--baseline-ref", help="the git commit the `before` target runs (a temporary worktree)"
    )
    parser.add_argument("--no-stock", action="store_true", help="skip the stock baseline")
    parser.add_argument("--no-light", action="store_true", help="skip the light-load run")
    parser.add_argument("--pad", type=int, default=100, help="message content length")
    parser.add_argument(
        "--mix", type=float, default=0, metavar="FRACTION",
        help="this fraction of the `ours` sender's frames are edits, deletes and reactions"
        " (in turn) on its own messages; `before` and stock send plain messages",
    )  # fmt: skip
    parser.add_argument(
        "--deflate", action="store_true", help="receivers offer permessage-deflate as browsers do"
    )
    parser.add_argument("--json", help="write results here instead of bench/results/")
    parser.add_argument(
        "--profile", metavar="DIR", help="py-spy the server during the ladder; stacks go to DIR"
    )
    return parser.parse_args(argv)


def _rates(text: str | None, default: list[float]) -> list[float]:
    return [float(r) for r in text.split(",")] if text else default


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    step_seconds = args.step_seconds or (3 if args.quick else 8)
    ours = Ladder(
        _rates(args.rates, QUICK_RATES if args.quick else FULL_RATES), step_seconds, args.pad
    )
    stock = Ladder(_rates(args.stock_rates, STOCK_RATES), step_seconds, args.pad)
    light = Ladder([LIGHT_RATE], max(step_seconds, 5 if args.quick else 10), args.pad)
    repeat = args.repeat or (1 if args.quick else 3)
    kinds = [k.strip() for k in args.servers.split(",") if k.strip()]
    wanted = {t.strip() for t in args.targets.split(",")}
    wanted -= {"stock"} if args.no_stock else set()
    wanted -= {"light"} if args.no_light else set()
    ladders = {"ours": ours, "before": ours, "stock": stock, "light": light}
    # Past half, the workload is mostly changes to messages: no chat room's.
    if not 0 <= args.mix <= 0.5:
        raise SystemExit("--mix must be a fraction from 0 to 0.5")
    if "before" in wanted and not args.baseline_ref:
        raise SystemExit("--targets before needs --baseline-ref <commit>")
    targets = [(kind, t, ladders[t]) for t in ladders if t in wanted for kind in kinds]
    n_senders = max(2, math.ceil(max(ours.rates + stock.rates) / PER_SENDER_RATE))
    started = time.time()
    with (
        BenchEnv() as env,
        baseline_tree(args.baseline_ref if "before" in wanted else None) as tree,
    ):
        from feeds.models import Room

        Room.objects.create(slug=ROOM, title="Bench")
        receivers = [key for _, key in env.create_users(args.clients, prefix="recv")]
        senders = [key for _, key in env.create_users(n_senders, prefix="send")]
        runs = []
        for _ in range(repeat):
            for kind, target, ladder in targets:
                crowd = receivers[:LIGHT_CLIENTS] if target == "light" else receivers
                runs.append(
                    run_target(
                        env, crowd, senders, kind=kind, target=target, ladder=ladder,
                        profile=args.profile if target in ("ours", "before") else None,
                        deflate=args.deflate, baseline=tree, mix=args.mix,
                    )
                )  # fmt: skip
    summary = summarize(runs)
    print_summary(summary)
    result = {
        "benchmark": "ws_fanout",
        "started": started,
        "seconds": round(time.time() - started, 1),
        "args": vars(args),
        "ladders": {"ours": vars(ours), "stock": vars(stock), "light": vars(light)},
        "senders": n_senders,
        "summary": summary,
        "runs": runs,
    }
    print(f"results: {save('ws_fanout', result, args.json)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
