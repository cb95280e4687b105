"""Per-process gauges for operators and the fault tests: live connections, memory.

Apps register a gauge (a function returning a number) once; `GET /api/health/` reports
them for the process that answers, so a test or an operator can see connections drain.
`fast_paths` beside them counts which server adapter each connection got
(realtime.fastpath): a server that lost its fast path shows there.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from realtime import fastpath

_GAUGES: dict[str, Callable[[], int]] = {}


def register_gauge(name: str, read: Callable[[], int]) -> None:
    _GAUGES[name] = read


def rss_bytes() -> int:
    """This process's resident memory (Linux /proc; 0 where unavailable)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def snapshot() -> dict[str, Any]:
    gauges = {k: f() for k, f in _GAUGES.items()}
    return {"pid": os.getpid(), "rss_bytes": rss_bytes(), **gauges, "fast_paths": fastpath.counts()}


def sse_streams() -> int:
    from realtime.longpoll import held_polls
    from realtime.sse import stream_count

    return stream_count() - held_polls()  # polls are streams too (realtime.longpoll)


def polls() -> int:
    from realtime.longpoll import held_polls

    return held_polls()
