"""The Pulse channel layer with the standard Channels API, across real processes.

A plain consumer (tests/support/plain_consumer_asgi.py) runs on one server process; a
`group_send` from another process reaches it; a chat message posted through a Pulse
server reaches both a Pulse room socket and that consumer in the room's group; and a
notification created in yet another process reaches it in the user's group.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect

from feeds.live import room_group
from feeds.models import Room
from tests.support.chat_ws import frame, joined, send
from tests.support.servers import RUN_DIR, UNCAPPED, Server, create_in_another_process, run_manage

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


class PlainServer(Server):
    def command(self) -> list[str]:
        command = super().command()
        command[-1] = "tests.support.plain_consumer_asgi:application"
        return command


@pytest.fixture(scope="module")
def plain_server(django_db_setup, django_db_blocker, redis_server) -> Iterator[Server]:
    with django_db_blocker.unblock():
        srv = PlainServer(
            redis_url=redis_server.url, log_path=RUN_DIR / "plain-server.log", env=UNCAPPED
        ).start()
    yield srv
    srv.stop()


async def plain(server: Server, *groups: str) -> ClientConnection:
    query = "&".join(f"group={g}" for g in groups)
    ws = await connect(f"{server.ws_url}/ws/plain/?{query}", open_timeout=5)
    assert json.loads(await ws.recv()) == {"type": "joined", "groups": list(groups)}
    return ws


async def received(ws: ClientConnection, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            message = json.loads(await ws.recv())
            if message["type"] == kind:
                return message


@pytest.mark.slow
async def test_a_group_send_from_another_process_reaches_a_plain_consumer(
    plain_server, redis_server
):
    ws = await plain(plain_server, "custom.test")
    try:
        code = (
            "from asgiref.sync import async_to_sync;"
            "from channels.layers import get_channel_layer;"
            "async_to_sync(get_channel_layer().group_send)("
            "'custom.test', {'type': 'test.hello', 'text': 'hi from a shell'})"
        )
        result = await asyncio.to_thread(
            run_manage, "shell", "-c", code, redis_url=redis_server.url
        )
        assert result.returncode == 0, result.stderr
        assert await received(ws, "test.hello") == {"type": "test.hello", "text": "hi from a shell"}
    finally:
        await ws.close()


async def test_a_chat_message_reaches_pulse_sockets_and_a_plain_consumer_in_the_room_group(
    server, second_server, plain_server, alice, bob
):
    room = await sync_to_async(Room.objects.create)(slug="general", title="General")
    consumer = await plain(plain_server, room_group(room.pk))
    a, _ = await joined(server, "general", alice)
    b, _ = await joined(second_server, "general", bob)
    try:
        await send(a, type="message", content="hello, everyone", client_msg_id="m-1")
        on_pulse = await frame(b, "broadcast")
        assert await frame(a, "broadcast") == on_pulse
        on_plain = await received(consumer, "chat.message")
        assert json.loads(on_plain["text"]) == on_pulse  # the very frame Pulse sockets get
        assert on_pulse["data"]["content"] == "hello, everyone"
        # And the other way: the plain consumer's group_send reaches the Pulse sockets.
        text = json.dumps({"type": "broadcast", "data": {"content": "from a plain consumer"}})
        await consumer.send(
            json.dumps(
                {"group": room_group(room.pk), "message": {"type": "chat.message", "text": text}}
            )
        )
        assert (await frame(a, "broadcast"))["data"]["content"] == "from a plain consumer"
    finally:
        for ws in (a, b, consumer):
            await ws.close()


async def test_a_notification_reaches_a_plain_consumer_in_the_users_group(
    plain_server, redis_server, alice
):
    consumer = await plain(plain_server, f"user-{alice.pk}")
    try:
        result = await asyncio.to_thread(
            create_in_another_process, "alice", redis_url=redis_server.url, title="Build passed"
        )
        assert result.returncode == 0, result.stderr
        event = await received(consumer, "pulse.event")
        assert (event["channel"], event["event"]) == (f"user-{alice.pk}", "notification")
        assert json.loads(event["data"])["title"] == "Build passed"
    finally:
        await consumer.close()
