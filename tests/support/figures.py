"""What fault tests measure, next to the limit they assert, for docs/hardening.md.

A fault test asserts a guarantee (nothing lost, nothing doubled, everyone back) within
limits that must hold on a busy CI machine. Each limit is checked through `within()`, which
also appends the measured value to $PULSE_FIGURES (JSON lines) when that is set:
`bench/fault_headroom.py` runs the slow tier beside a CPU hog and reports the worst value
of each figure against its limit, so a limit's headroom is measured, not guessed.
"""

from __future__ import annotations

import json
import os
import time


def within(figure: str, value: float, limit: float, *, context: object = None) -> None:
    """Assert `value <= limit` and record both under `figure` (e.g. "redis_chat.back_p99_s")."""
    path = os.environ.get("PULSE_FIGURES")
    if path:
        with open(path, "a", encoding="utf-8") as out:
            row = {"figure": figure, "value": value, "limit": limit, "at": time.time()}
            out.write(json.dumps(row) + "\n")
    assert value <= limit, f"{figure}: {value:.3f} over the limit {limit:.3f} ({context!r})"
