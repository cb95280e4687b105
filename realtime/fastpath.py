"""Which fast paths this process takes: counters for `GET /api/health/`, one warning if none.

The fast paths (the server adapters of realtime.servers, used by realtime.outbox and
realtime.sse_asgi, and the prepared frames of realtime.daphne_ws) rely on a server's
internals and fall back without an error when they do not find them. Counting each
connection's adapter makes a fallback visible: `ws-none` or `sse-none` rising, or `ws-
daphne-stock-frames` where prepared frames were expected. Counts are per process, since
the last start, and only ever grow.
"""

from __future__ import annotations

import logging
from collections import Counter

logger = logging.getLogger(__name__)

KINDS = {"ws": "chat WebSocket", "sse": "SSE stream"}
NO_FAST_PATH = (
    "No fast path for this ASGI server (a %s found no adapter): chat rooms fan out much "
    "slower (a task wake-up per member and frame instead of direct writes), and the "
    "per-client buffer bound cannot see the server's own buffer, which may grow without "
    "limit for a client that stops reading. "
    "Serve with `python manage.py serve` (or `--server uvicorn`), "
    "`daphne config.asgi:application`, or "
    "`uvicorn --ws websockets-sansio config.asgi:application`. "
    "GET /api/health/ counts the paths taken (fast_paths). Logged once per process."
)

_counts: Counter[str] = Counter()
_warned = False


def note(name: str) -> None:
    """Count one use of the path `name`."""
    _counts[name] += 1


def note_adapter(kind: str, adapter: object | None, **servers: type) -> None:
    """Count the server adapter a new `kind` connection got (`ws-daphne`, `ws-none`...):
    `servers` maps each server's name to its adapter class. Warn at the first without one."""
    if adapter is None:
        note(f"{kind}-none")
        _warn_once(kind)
        return
    server = next((name for name, cls in servers.items() if type(adapter) is cls), "other")
    note(f"{kind}-{server}")


def _warn_once(kind: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(NO_FAST_PATH, KINDS.get(kind, kind))


class Tally:
    """A counter for a per-frame path: `tally.n += 1` costs a fraction of note()'s call and
    dict update, which matters once per member and frame of a big room."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


_tallies: dict[str, Tally] = {}


def tally(name: str) -> Tally:
    """The tally counted as `name` in counts()."""
    return _tallies.setdefault(name, Tally())


def counts() -> dict[str, int]:
    """A copy of the counters, safe to take from another thread: one C-level dict copy."""
    out = dict(_counts)
    out.update((name, t.n) for name, t in tuple(_tallies.items()) if t.n)
    return out
