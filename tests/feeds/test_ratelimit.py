"""The per-user frame budget, kept in Redis so tabs and processes share it."""

from __future__ import annotations

import asyncio

import pytest

from feeds import ratelimit


@pytest.fixture
def no_refill(monkeypatch) -> None:
    """Refill so slow that a loaded test machine cannot earn a token mid-test."""
    monkeypatch.setattr(ratelimit, "REFILL_PER_SECOND", 0.001)


async def spend(user_id: int, n: int, cost: float = 1.0) -> list[ratelimit.Verdict]:
    return [await ratelimit.frame_verdict(user_id=user_id, cost=cost) for _ in range(n)]


async def test_a_burst_passes_then_frames_are_refused_then_a_flood_is_named(no_refill):
    allowed = await spend(1, ratelimit.BUCKET_SIZE)
    assert all(v.allowed for v in allowed)
    refused = await spend(1, ratelimit.FLOOD_STRIKES)
    assert [v.allowed for v in refused] == [False] * ratelimit.FLOOD_STRIKES
    assert [v.flood for v in refused] == [False] * (ratelimit.FLOOD_STRIKES - 1) + [True]


async def test_the_budget_is_per_user(no_refill):
    await spend(1, ratelimit.BUCKET_SIZE + 1)
    assert (await ratelimit.frame_verdict(user_id=2, cost=1)).allowed


async def test_typing_frames_cost_a_quarter(no_refill):
    verdicts = await spend(1, ratelimit.BUCKET_SIZE * 4, cost=0.25)
    assert all(v.allowed for v in verdicts)
    assert not (await ratelimit.frame_verdict(user_id=1, cost=0.25)).allowed


async def test_the_budget_refills_with_time(monkeypatch):
    monkeypatch.setattr(ratelimit, "BUCKET_SIZE", 1)
    monkeypatch.setattr(ratelimit, "REFILL_PER_SECOND", 4)  # a token every 0.25 s
    assert [v.allowed for v in await spend(1, 2)] == [True, False]
    await asyncio.sleep(0.3)  # time passing is the point here, not an event
    assert (await ratelimit.frame_verdict(user_id=1, cost=1)).allowed
