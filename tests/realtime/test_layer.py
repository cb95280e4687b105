"""The Pulse channel layer in one process: the standard Channels API on the real Redis."""

from __future__ import annotations

import asyncio
import logging

import pytest
import redis
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from realtime.layer import PulseChannelLayer


async def test_group_send_reaches_every_channel_in_the_group_once_in_order():
    layer = get_channel_layer()
    a, b, outsider = [await layer.new_channel() for _ in range(3)]
    for channel in (a, b):
        await layer.group_add("tests.room", channel)
    for n in range(3):
        await layer.group_send("tests.room", {"type": "tests.tick", "n": n})
    for channel in (a, b):
        got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(3)]
        assert [m["n"] for m in got] == [0, 1, 2]
    await layer.group_discard("tests.room", b)
    await layer.group_send("tests.room", {"type": "tests.tick", "n": 3})
    assert (await asyncio.wait_for(layer.receive(a), 5))["n"] == 3
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(outsider), 0.3)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(b), 0.3)


async def test_send_reaches_one_channel_and_each_receiver_gets_its_own_copy():
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.send(channel, {"type": "tests.direct", "items": [1]})
    message = await asyncio.wait_for(layer.receive(channel), 5)
    assert message == {"type": "tests.direct", "items": [1]}


async def test_a_full_channel_loses_the_overflow_not_the_process(caplog):
    # At WARNING whatever ran before (seed_demo quiets this logger in its process).
    caplog.set_level(logging.WARNING, logger="realtime.layer")
    layer = PulseChannelLayer(capacity=2)
    channel = await layer.new_channel()
    await layer.group_add("tests.full", channel)
    await layer.group_send_many([("tests.full", {"type": "t", "n": n}) for n in range(4)])
    await asyncio.sleep(0.3)
    got = [await asyncio.wait_for(layer.receive(channel), 5) for _ in range(2)]
    assert [m["n"] for m in got] == [0, 1]
    assert "is full" in caplog.text


async def test_bad_group_names_and_foreign_channels_are_refused_clearly():
    layer = get_channel_layer()
    with pytest.raises(TypeError, match="not valid"):
        await layer.group_send("has space", {"type": "x"})
    with pytest.raises(RuntimeError, match="exist in-process"):
        await layer.group_add("tests.room", "asgispecific.not-mine")


def test_hosts_are_refused_since_the_layer_uses_redis_url():
    with pytest.raises(ImproperlyConfigured, match="REDIS_URL"):
        PulseChannelLayer(hosts=["redis://elsewhere"])


def test_sending_from_sync_code_does_not_leave_connections_open():
    """async_to_sync runs each call in a new event loop (a management command)."""
    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        layer = get_channel_layer()
        async_to_sync(layer.group_send)("tests.sync", {"type": "x"})
        before = len(client.client_list())
        for n in range(30):
            async_to_sync(layer.group_send)("tests.sync", {"type": "x", "n": n})
        assert len(client.client_list()) <= before + 1
    finally:
        client.close()
