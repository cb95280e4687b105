"""Chat on the per-process hub and the real Redis: joins that miss nothing, resync after a break."""

from __future__ import annotations

import asyncio
import json
import os

import redis
from django.conf import settings

from feeds import live, protocol
from realtime.layer import pulse_layer
from realtime.outbox import Outbox


async def member(room_id: int, user_id: int = 0) -> tuple[Outbox, asyncio.Queue]:
    sent: asyncio.Queue = asyncio.Queue()
    box = Outbox(sent.put, user_id=user_id)
    await live.join(box, room_id=room_id)
    return box, sent


async def send_frame(room_id: int, frame: dict) -> None:
    text = protocol.encode(frame)
    await pulse_layer().group_send(live.room_group(room_id), {"type": live.MESSAGE, "text": text})


async def next_message(sent: asyncio.Queue) -> dict:
    return await asyncio.wait_for(sent.get(), 5)


def kill_hub_connections() -> int:
    """Drop this process's hub subscriptions, as a Redis restart or a network cut would."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        name = f"pulse-hub-{os.getpid()}"
        ids = [c["id"] for c in client.client_list() if c.get("name") == name]
        for client_id in ids:
            client.client_kill_filter(_id=client_id)
        return len(ids)
    finally:
        client.close()


async def test_a_frame_published_once_join_returns_is_delivered():
    _, sent = await member(room_id=1)
    await send_frame(1, {"type": "ping", "n": 1})
    assert json.loads((await next_message(sent))["text"]) == {"type": "ping", "n": 1}


async def test_user_events_reach_every_socket_of_the_user_in_order():
    events: asyncio.Queue = asyncio.Queue()
    for room_id in (1, 2):
        box = Outbox(asyncio.Queue().put, user_id=42, on_control=events.put_nowait)
        await live.join(box, room_id=room_id)
    layer = pulse_layer()
    await layer.group_send("pulse.user.42", {"type": live.RECHECK})
    await layer.group_send("pulse.user.42", {"type": live.CLOSE, "code": 4001, "session": ""})
    got = [await asyncio.wait_for(events.get(), 5) for _ in range(4)]
    assert [m["type"] for m in got] == [live.RECHECK] * 2 + [live.CLOSE] * 2
    assert got[-1]["code"] == 4001


async def test_sockets_open_across_a_lost_subscription_are_closed_with_4012():
    _, before_sent = await member(room_id=1)
    assert kill_hub_connections() == 1
    closing = await next_message(before_sent)
    assert closing == {"type": "websocket.close", "code": protocol.CLOSE_RESYNC}
    after, after_sent = await member(room_id=1)  # joined on the new subscription
    await send_frame(1, {"type": "ping"})
    assert json.loads((await next_message(after_sent))["text"]) == {"type": "ping"}
    assert after.state == "open"


def subscribe_commands() -> int:
    """SUBSCRIBE commands the Redis server has run so far."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        return int(client.info("commandstats").get("cmdstat_subscribe", {}).get("calls", 0))
    finally:
        client.close()


async def test_a_burst_of_joins_subscribes_in_a_few_commands():
    await member(room_id=7, user_id=1)  # the hub's own connection is up
    before = subscribe_commands()
    joined = await asyncio.gather(*(member(room_id=7, user_id=100 + i) for i in range(50)))
    assert len(joined) == 50  # each joined once Redis confirmed its user's channel
    assert subscribe_commands() - before <= 3
