"""How a crowd of clients came back: bursts, percentiles, per-second counts; and room for
thousands of sockets in one test process."""

from __future__ import annotations

import resource
from collections import defaultdict


def busiest_window(times: list[float], width: float = 1.0) -> int:
    """The most of `times` that fall within any `width` seconds."""
    times = sorted(times)
    best, start = 0, 0
    for end, t in enumerate(times):
        while times[start] < t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def histogram(times: list[float]) -> list[int]:
    """How many of `times` fall in each whole second, from the first to the last."""
    counts: dict[int, int] = defaultdict(int)
    for t in times:
        counts[int(t // 1)] += 1
    return [counts[s] for s in range(min(counts), max(counts) + 1)] if counts else []


def raise_open_files_limit(needed: int) -> None:
    """Raise this process's soft limit on open files (up to the hard one); processes it
    starts afterwards inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(needed, hard), hard))
