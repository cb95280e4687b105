"""What the metrics cost the fan-out: a room's frame and an SSE event to 1,000 local members,
with the real metrics against the same code with them swapped for no-ops, in one process.

    python -m bench.metrics_overhead                   # multiprocess mode (a temp dir)
    python -m bench.metrics_overhead --per-process     # without PROMETHEUS_MULTIPROC_DIR
    python -m bench.metrics_overhead --members 1000 --rounds 15 --deliveries 200

The end-to-end bench (bench.ws_fanout --targets ours,before) measures the whole server,
but on a shared machine its noise is larger than this difference. Here the two variants
alternate round by round over the same objects (realtime.outbox's room fan-out and
realtime.sse's stream delivery, the servers' own writes replaced by a no-op), so load
hits both alike; it prints the median time per delivery (one frame to one member) of
each (CPU time of this process, so other processes on the machine count less) and
their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import sys
import tempfile
import time
import types
from typing import Any


class _Null:
    """A metric that does nothing: the "before" variant."""

    def inc(self, amount: float = 1) -> None:
        pass

    def observe(self, value: float) -> None:
        pass


def null_metrics(real: types.ModuleType) -> types.SimpleNamespace:
    null = _Null()
    names = {name: null for name in dir(real) if name.isupper()}
    return types.SimpleNamespace(**names, observe_latency=lambda histogram, at: None)


class _Wire:
    """A server that always keeps up (the send itself is a no-op)."""

    def buffered(self) -> int:
        return 0

    def writable(self, limit: int) -> bool:
        return True

    def hold(self) -> None:
        pass

    def flush(self) -> None:
        pass

    def abort(self) -> None:
        pass


async def _sent(message: Any) -> None:
    pass


async def run(members: int, rounds: int, deliveries: int) -> dict[str, dict[str, float]]:
    from realtime import metrics, outbox, sse
    from realtime.sse import STREAMS, Connection, ReplayRead
    from realtime.wire import event_message, stamped

    boxes = []
    for i in range(members):
        box = outbox.Outbox(_sent, user_id=i)
        box.wire = _Wire()  # type: ignore[assignment]
        boxes.append(box)
    streams = []
    for i in range(members):
        conn = Connection(user_id=i, session_key="", positions={"announcements": 0})
        conn.apply_catch_up(ReplayRead())
        streams.append(conn)
    boxes_t, streams_t = tuple(boxes), tuple(streams)
    variants = {"metrics": metrics, "no metrics": null_metrics(metrics)}
    times: dict[str, dict[str, list[float]]] = {
        path: {v: [] for v in variants} for path in ("ws_chat", "sse")
    }
    event_id = 0
    for _ in range(rounds):
        for variant, module in variants.items():
            outbox.metrics = module  # type: ignore[attr-defined]
            sse.metrics = module  # type: ignore[attr-defined]
            started = time.process_time()
            for _ in range(deliveries):
                await outbox.WEBSOCKETS.deliver(
                    boxes_t, [stamped({"type": "chat.message", "text": "{}"})]
                )
            times["ws_chat"][variant].append(time.process_time() - started)
            started = time.process_time()
            for _ in range(deliveries):
                event_id += 1
                await STREAMS.deliver(
                    streams_t, [event_message("announcements", "a", "{}", event_id)]
                )
            times["sse"][variant].append(time.process_time() - started)
            for conn in streams:
                conn.take()  # what the writer would have sent
    outbox.metrics = sse.metrics = metrics  # type: ignore[attr-defined]
    per = members * deliveries
    return {
        path: {v: statistics.median(t) / per * 1e9 for v, t in by_variant.items()}
        for path, by_variant in times.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=31)
    parser.add_argument("--deliveries", type=int, default=100, help="messages per round")
    parser.add_argument("--per-process", action="store_true", help="no multiprocess dir")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pulse-metrics-") as directory:
        if args.per_process:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory  # before any metric exists
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        os.environ.setdefault("DEBUG", "1")
        import django

        django.setup()
        # The members have no server adapter on purpose (sends are no-ops): no warning.
        logging.getLogger("realtime.fastpath").setLevel(logging.ERROR)
        mode = "per-process" if args.per_process else "multiprocess"
        print(f"{args.members} members, {args.rounds} rounds of {args.deliveries} messages, {mode}")
        results = asyncio.run(run(args.members, args.rounds, args.deliveries))
    print(f"{'path':8} {'no metrics ns':>14} {'metrics ns':>11} {'ratio':>6}")
    for path, by_variant in results.items():
        base, ours = by_variant["no metrics"], by_variant["metrics"]
        print(f"{path:8} {base:14.1f} {ours:11.1f} {ours / base:6.3f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
