"""What the delivery core counts, read from this process's registry (no multiprocess dir)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from prometheus_client import REGISTRY

from realtime import metrics
from realtime.outbox import WEBSOCKETS, Outbox
from realtime.sse import STREAMS
from realtime.wire import PUBLISHED_AT, event_message, stamped
from tests.support.streams import live_connection


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


class Wire:
    """A server that always keeps up."""

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


def outbox(sent: list, user_id: int = 7) -> Outbox:
    async def send(message: dict) -> None:
        sent.append(message)

    box = Outbox(send, user_id=user_id)
    box.wire = Wire()  # type: ignore[assignment]
    return box


async def test_a_room_fan_out_counts_each_receiver_and_one_latency_per_message():
    delivered = sample("pulse_events_delivered_total", transport="ws_chat")
    observed = sample("pulse_delivery_latency_seconds_count", transport="ws_chat")
    opened = sample("pulse_connections_open", transport="ws_chat")
    sent: list = []
    boxes = [outbox(sent, user_id=i) for i in range(5)]
    assert sample("pulse_connections_open", transport="ws_chat") == opened + 5
    messages = [stamped({"type": "chat.message", "text": f"frame {i}"}) for i in range(3)]
    # The typist's own sockets are skipped, and not counted.
    messages.append(stamped({"type": "chat.typing", "text": "typing", "skip_user": 0}))
    await WEBSOCKETS.deliver(tuple(boxes), messages)
    assert len(sent) == 5 * 3 + 4
    assert sample("pulse_events_delivered_total", transport="ws_chat") == delivered + 19
    assert sample("pulse_delivery_latency_seconds_count", transport="ws_chat") == observed + 4
    for box in boxes:
        box.gone()
        box.gone()  # counted down once
    assert sample("pulse_connections_open", transport="ws_chat") == opened


async def test_a_slow_chat_socket_is_counted_once_when_cut_off():
    before = sample("pulse_slow_client_cutoffs_total", transport="ws_chat")
    box = outbox([])
    box.too_slow()
    box.too_slow()
    assert sample("pulse_slow_client_cutoffs_total", transport="ws_chat") == before + 1
    box.gone()


async def test_sse_deliveries_cut_offs_and_resets_are_counted():
    delivered = sample("pulse_events_delivered_total", transport="sse")
    cutoffs = sample("pulse_slow_client_cutoffs_total", transport="sse")
    streams = [live_connection(announcements=0) for _ in range(3)]
    other = live_connection(**{"user-7": 0})
    message = event_message("announcements", "a", "{}", 1)
    message[PUBLISHED_AT] = time.time() - 0.2
    observed = sample("pulse_delivery_latency_seconds_bucket", transport="sse", le="0.1")
    await STREAMS.deliver((*streams, other), [message])
    assert sample("pulse_events_delivered_total", transport="sse") == delivered + 3
    # 0.2 s since the publish: above the 0.1 s bucket.
    assert sample("pulse_delivery_latency_seconds_bucket", transport="sse", le="0.1") == observed
    streams[0].cut_off()
    streams[0].cut_off()
    assert sample("pulse_slow_client_cutoffs_total", transport="sse") == cutoffs + 1


def test_dead_processes_live_gauges_are_pruned_and_live_ones_kept(tmp_path: Path):
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True)  # fmt: skip
    dead = int(done.stdout)
    for pid in (dead, 1):
        (tmp_path / f"gauge_livesum_{pid}.db").write_bytes(b"")
    (tmp_path / f"counter_{dead}.db").write_bytes(b"")  # counters stay: totals never drop
    metrics.prune_dead_processes(str(tmp_path))
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [f"counter_{dead}.db", "gauge_livesum_1.db"]
