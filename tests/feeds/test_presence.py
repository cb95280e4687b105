"""Presence in Redis: people not tabs, expiry of dead processes, batched diffs."""

from __future__ import annotations

import asyncio
import itertools
import json

import pytest

from feeds import live, presence
from realtime import redis_state
from realtime.outbox import Outbox
from realtime.redis_state import async_client, key


async def listen(room_id: int) -> asyncio.Queue:
    """The frames published to the room, as this process's hub delivers them."""
    frames: asyncio.Queue = asyncio.Queue()
    await live.join(Outbox(frames.put, user_id=0), room_id=room_id)
    return frames


async def next_diff(frames: asyncio.Queue, timeout: float = 3.0) -> dict:
    message = await asyncio.wait_for(frames.get(), timeout)
    return json.loads(message["text"])


async def test_a_user_stays_online_until_their_last_connection_leaves(redis_layer):
    frames = await listen(1)
    await presence.enter(room_id=1, username="alice", conn_id="server1!a")
    await presence.enter(room_id=1, username="alice", conn_id="server2!b")
    assert await next_diff(frames) == {"type": "presence", "joined": ["alice"], "left": []}
    await presence.leave(room_id=1, username="alice", conn_id="server1!a")
    await presence.settle()
    assert await presence.online(room_id=1) == ["alice"]
    await presence.leave(room_id=1, username="alice", conn_id="server2!b")
    assert await next_diff(frames) == {"type": "presence", "joined": [], "left": ["alice"]}
    assert await presence.online(room_id=1) == []


async def test_connections_of_a_dead_process_expire_and_are_announced(redis_layer):
    frames = await listen(1)
    await presence.enter(room_id=1, username="alice", conn_id="live!a")
    await presence.enter(room_id=1, username="bob", conn_id="dead!b")
    await next_diff(frames)
    # The process holding bob's connection died: its heartbeats stopped, the score passed.
    await async_client().zadd(key("presence", 1), {"bob|dead!b": 1})
    assert await presence.online(room_id=1) == ["alice"]
    await presence.heartbeat(room_id=1, username="alice", conn_id="live!a")
    assert await next_diff(frames) == {"type": "presence", "joined": [], "left": ["bob"]}


async def test_diffs_are_spaced_by_the_flush_interval(redis_layer, monkeypatch):
    monkeypatch.setattr(presence, "FLUSH_INTERVAL_MS", 400)
    frames = await listen(1)
    flushed_at, diffs = [], []
    for i in range(4):
        await presence.enter(room_id=1, username=f"user{i}", conn_id=f"c{i}")
        diffs.append((await next_diff(frames))["joined"])
        flushed_at.append(int(await async_client().get(key("presence", 1, "flushed"))))
    # Redis's own clock, as the flushes saw it: no delivery delay in the measure.
    gaps = [b - a for a, b in itertools.pairwise(flushed_at)]
    assert all(gap >= 400 for gap in gaps), gaps
    assert diffs == [[f"user{i}"] for i in range(4)]


async def test_changes_that_cancel_out_send_nothing(redis_layer):
    frames = await listen(1)
    await presence.enter(room_id=1, username="alice", conn_id="a")
    await next_diff(frames)
    await presence.enter(room_id=1, username="bob", conn_id="b")
    await presence.leave(room_id=1, username="bob", conn_id="b")
    await presence.settle()
    await presence.enter(room_id=1, username="carol", conn_id="c")
    assert await next_diff(frames) == {"type": "presence", "joined": ["carol"], "left": []}


@pytest.mark.parametrize("name", ["a|b", "x"])
async def test_online_lists_names_once_sorted(redis_layer, name):
    for conn in ("1", "2"):
        await presence.enter(room_id=2, username="zed", conn_id=conn)
    await presence.enter(room_id=2, username="amy", conn_id=name)
    assert await presence.online(room_id=2) == ["amy", "zed"]


async def test_one_heartbeat_for_many_rooms_re_adds_and_announces_expired_entries(
    redis_layer, monkeypatch
):
    monkeypatch.setattr(redis_state, "SCRIPT_BATCH", 2)  # three scripts for five members
    first, second = await listen(1), await listen(2)
    for room_id, name in ((1, "alice"), (1, "bob"), (2, "carol")):
        await presence.enter(room_id=room_id, username=name, conn_id=f"{name}!1")
    assert (await next_diff(first))["joined"] == ["alice", "bob"]
    assert (await next_diff(second))["joined"] == ["carol"]
    store = async_client()
    await store.zadd(key("presence", 1), {"bob|bob!1": 1})  # bob's process died
    await store.zrem(key("presence", 2), "carol|carol!1")  # lost (a Redis restart)
    await presence.heartbeat_many(
        [
            (1, "alice", "alice!1"),
            (2, "carol", "carol!1"),
            (2, "dave", "dave!1"),
            (3, "erin", "erin!1"),
            (3, "erin", "erin!2"),
        ]
    )
    assert await next_diff(first) == {"type": "presence", "joined": [], "left": ["bob"]}
    assert await next_diff(second) == {"type": "presence", "joined": ["dave"], "left": []}
    assert await presence.online(room_id=2) == ["carol", "dave"]
    assert await presence.online(room_id=3) == ["erin"]
    seconds, _ = await store.time()
    scores = await store.zrange(key("presence", 3), 0, -1, withscores=True)
    assert all(score > seconds * 1000 + presence.TTL_MS - 5000 for _, score in scores)
