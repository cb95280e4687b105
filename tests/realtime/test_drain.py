"""The drain's schedule (realtime.drain.move_off): evenly spread, no burst after a stall."""

from __future__ import annotations

import asyncio
import time

import pytest

from realtime import drain
from tests.support.reconnects import busiest_window


@pytest.fixture
def moved(monkeypatch) -> list[tuple[float, int]]:
    """(when, client) for each move, instead of closing anything."""
    out: list[tuple[float, int]] = []
    monkeypatch.setattr(drain, "move", lambda c: out.append((time.monotonic(), c)))
    return out


async def test_clients_are_moved_in_order_spread_evenly_over_the_window(moved) -> None:
    start = time.monotonic()
    await drain.move_off(list(range(100)), spread=1.0)
    assert [c for _, c in moved] == list(range(100))
    times = [t - start for t, _ in moved]
    assert times[-1] >= 0.9
    assert busiest_window(times, width=0.1) <= 25  # 10 per 0.1 s is even; ticks bunch a few


async def test_after_a_stall_the_rest_is_spread_over_the_time_left(moved, monkeypatch) -> None:
    def stall_once(client: int) -> None:
        moved.append((time.monotonic(), client))
        if client == 10:
            time.sleep(0.5)  # the event loop is busy elsewhere: 50 moves fall behind

    monkeypatch.setattr(drain, "move", stall_once)
    start = time.monotonic()
    await drain.move_off(list(range(100)), spread=1.0)
    times = [t - start for t, _ in moved]
    assert len(times) == 100 and times[-1] < 1.2
    # ~90 left over ~0.45 s: about 20 per 0.1 s (a few more around the stall), not 50 at once.
    assert busiest_window(times, width=0.1) <= 40, times


async def test_no_window_moves_everyone_at_once(moved) -> None:
    await drain.move_off(list(range(5)), spread=0)
    assert [c for _, c in moved] == list(range(5))
    await asyncio.sleep(0)
