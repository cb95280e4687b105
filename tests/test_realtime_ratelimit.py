"""Sliding-window limits for async code, counted in Redis (realtime.ratelimit)."""

from __future__ import annotations

import pytest
import redis
from limits import RateLimitItemPerMinute

from realtime import ratelimit, redis_state

ITEM = RateLimitItemPerMinute(3)


@pytest.fixture(autouse=True)
async def _loop_client():
    yield
    await redis_state.close_async_client()


async def test_hits_past_the_window_are_refused_per_identifier():
    assert [await ratelimit.hit(ITEM, "test", 1) for _ in range(4)] == [True, True, True, False]
    assert await ratelimit.hit(ITEM, "test", 2)
    assert await ratelimit.hit(ITEM, "other", 1)


async def test_a_redis_failure_lets_hits_through(monkeypatch):
    class Down:
        async def hit(self, *args, **kwargs):
            raise redis.ConnectionError("Redis is down")

    monkeypatch.setattr(ratelimit, "_limiter", Down)
    assert all([await ratelimit.hit(ITEM, "test", 1) for _ in range(5)])
