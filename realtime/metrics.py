"""Prometheus metrics of the delivery core: every metric Pulse exports is defined here.

`GET /metrics` (realtime.ops) renders them. With PROMETHEUS_MULTIPROC_DIR set (a directory
every server process of a host shares), prometheus_client's multiprocess mode keeps each
process's values in a file there and a scrape of any one process sums the whole host:
one scrape target per host, and counters survive a process's restart. Without it each
process reports only itself (scrape each one).

Hot paths count once per batch (one `inc(n)` per fan-out of a message to a process's
members, one latency observation per message and process), never per receiver: a counter
update in multiprocess mode takes a lock and writes to an mmap, about a microsecond.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

__all__ = ["CONTENT_TYPE_LATEST", "render"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Transports (the `transport` label).
SSE = "sse"  # GET /events/ streams (realtime.sse)
WS_CHAT = "ws_chat"  # chat sockets, /ws/chat/<slug>/ (realtime.outbox)
WS_EVENTS = "ws_events"  # live channels over WebSocket, /ws/events/ (realtime.consumers)

CONNECTIONS_OPEN = Gauge(
    "pulse_connections_open",
    "Live connections open now, by transport.",
    ["transport"],
    # Summed over the live processes; a process's share goes when it exits (or dies).
    multiprocess_mode="livesum",
)
EVENTS_DELIVERED = Counter(
    "pulse_events_delivered",
    "Live events and chat frames handed to connections, by transport (one per receiver).",
    ["transport"],
)
DELIVERY_LATENCY = Histogram(
    "pulse_delivery_latency_seconds",
    "From publish to the write to a process's local connections, per message and process.",
    ["transport"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
PUBLISH_FAILURES = Counter(
    "pulse_publish_failures",
    "Messages whose publish to Redis failed (clients recover stored ones by replay or backfill).",
)
RELAY_RECONNECTS = Counter(
    "pulse_relay_reconnects",
    "Times a process's Redis subscription (its hub) was lost and established again.",
)
RESYNCS = Counter(
    "pulse_resyncs",
    "Connections told to catch up after a lost subscription or a failed publish: chat "
    "sockets closed with 4012, SSE streams re-reading storage.",
    ["transport"],
)
SSE_REPLAYS = Counter(
    "pulse_sse_replays",
    "SSE catch-ups from storage begun: each stream's start (after its Last-Event-ID or at "
    "the current position) and each resync.",
)
SSE_REPLAYED_EVENTS = Counter(
    "pulse_sse_replayed_events",
    "Events SSE streams were sent from storage (replay), not live.",
)
SSE_RESETS = Counter(
    "pulse_sse_resets",
    "stream-reset events sent: a Last-Event-ID position storage never issued.",
)
SLOW_CLIENT_CUTOFFS = Counter(
    "pulse_slow_client_cutoffs",
    "Connections cut off for falling too far behind (chat: close 4009; SSE: dropped, the "
    "client resumes with Last-Event-ID).",
    ["transport"],
)
RATE_LIMITED = Counter(
    "pulse_rate_limited",
    "Actions refused by a rate limit, by limit.",
    ["limit"],
)

# Children for the hot paths: a label lookup each time would cost more than the update.
SSE_OPEN = CONNECTIONS_OPEN.labels(SSE)
WS_CHAT_OPEN = CONNECTIONS_OPEN.labels(WS_CHAT)
WS_EVENTS_OPEN = CONNECTIONS_OPEN.labels(WS_EVENTS)
SSE_DELIVERED = EVENTS_DELIVERED.labels(SSE)
WS_CHAT_DELIVERED = EVENTS_DELIVERED.labels(WS_CHAT)
WS_EVENTS_DELIVERED = EVENTS_DELIVERED.labels(WS_EVENTS)
SSE_LATENCY = DELIVERY_LATENCY.labels(SSE)
WS_CHAT_LATENCY = DELIVERY_LATENCY.labels(WS_CHAT)
WS_EVENTS_LATENCY = DELIVERY_LATENCY.labels(WS_EVENTS)
SSE_RESYNCS = RESYNCS.labels(SSE)
WS_CHAT_RESYNCS = RESYNCS.labels(WS_CHAT)
SSE_CUTOFFS = SLOW_CLIENT_CUTOFFS.labels(SSE)
WS_CHAT_CUTOFFS = SLOW_CLIENT_CUTOFFS.labels(WS_CHAT)


def observe_latency(histogram: Histogram, published_at: float | None) -> None:
    """Record publish -> now for a message stamped at publish (realtime.wire.PUBLISHED_AT).
    Wall clocks: across hosts this includes their clock difference."""
    if published_at is not None:
        histogram.observe(max(0.0, time.time() - published_at))


def multiprocess_dir() -> str | None:
    return os.environ.get(MULTIPROC_ENV) or None


def render() -> bytes:
    """The text exposition: the whole host in multiprocess mode, else this process."""
    path = multiprocess_dir()
    if path is None:
        return generate_latest(PROCESS_REGISTRY)
    prune_dead_processes(path)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=path)
    return generate_latest(registry)


_LIVE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db")


def prune_dead_processes(path: str) -> None:
    """Drop the live gauges of processes that are gone without saying so (SIGKILL, OOM):
    otherwise their open connections would count until the directory is cleared."""
    for file in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        found = _LIVE_FILE.fullmatch(os.path.basename(file))
        if found and not _alive(int(found.group(1))):
            with contextlib.suppress(FileNotFoundError):  # another scrape was quicker
                mark_process_dead(int(found.group(1)), path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def _mark_this_process_dead() -> None:
    path = multiprocess_dir()
    if path is not None:
        mark_process_dead(os.getpid(), path)


atexit.register(_mark_this_process_dead)
