"""`/ws/events/` through the full ASGI stack: a latest-value channel never goes back."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async

from realtime import api, channels, sse
from realtime.layer import pulse_layer
from realtime.redis_clients import close_loop_clients
from realtime.wire import event_message
from tests.support.communicators import events_socket

pytestmark = pytest.mark.django_db(transaction=True)


def price(channel: str, value: int, event_id: int) -> dict:
    return event_message(channel, "price", json.dumps({"v": value}), event_id, 0, latest=True)


async def test_a_value_older_than_the_one_a_socket_opened_with_is_not_sent(kinds, alice):
    api.register_channel("price", can_read=lambda user, key: True, replay=channels.LATEST)
    for value in (1, 2, 3):
        await api.apublish("price-ACME", "price", {"v": value})
    socket = await events_socket(alice, "price-ACME")
    try:
        opened_with = await socket.receive_json_from(timeout=5)
        assert opened_with["data"] == {"v": 3}
        newest = opened_with["id"]
        # Published before the socket read the latest value, delivered after it.
        await pulse_layer().group_send("price-ACME", price("price-ACME", 2, newest - 1))
        await pulse_layer().group_send("price-ACME", price("price-ACME", 4, newest + 1))
        assert (await socket.receive_json_from(timeout=5))["data"] == {"v": 4}
    finally:
        await socket.disconnect()
        await close_loop_clients()


async def test_signing_out_closes_that_sessions_event_sockets(kinds, alice):
    api.register_channel("news", can_read=lambda user, key: True)  # live only: no first frame
    mine = await events_socket(alice, "news-today")
    other = await events_socket(alice, "news-today")  # another session of alice's
    try:
        session = dict(mine.scope["headers"])[b"cookie"].decode().split("=", 1)[1]
        await sync_to_async(sse.kick)(user_id=alice.pk, session_key=session)
        assert (await mine.receive_output(timeout=5))["code"] == 4001
        assert await other.receive_nothing(timeout=0.3)
        await sync_to_async(sse.kick)(user_id=alice.pk, session_key=None)  # a password change
        assert (await other.receive_output(timeout=5))["code"] == 4001
    finally:
        await close_loop_clients()
