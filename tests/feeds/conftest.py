"""Chat test fixtures: clean chat keys in Redis, channel layers, WebSocket clients."""

from __future__ import annotations

import copy

import pytest

from feeds import presence
from realtime import redis_state


@pytest.fixture
def fast_presence(monkeypatch) -> None:
    """Presence diffs every 0.2 s instead of 1 s, so tests wait less."""
    monkeypatch.setattr(presence, "FLUSH_INTERVAL_MS", 200)
    monkeypatch.setattr(presence, "COALESCE_MS", 20)


@pytest.fixture(autouse=True)
async def chat_loop(fast_presence):
    """What an async chat test leaves on its loop: scheduled flushes, the Redis client."""
    yield
    await presence.settle()
    await redis_state.close_async_client()


@pytest.fixture
def redis_layer(settings) -> None:
    """The Pulse channel layer on the test Redis, as a fresh instance for this test."""
    settings.CHANNEL_LAYERS = copy.deepcopy(settings.CHANNEL_LAYERS)
