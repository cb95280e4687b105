"""A chat room without WebSockets, on a real daphne: messages posted over HTTP and over a
socket reach readers of the room's channel (`chat-<id>`) over SSE, long polls and short
polls, once each and with the socket's broadcast data; a reader that comes back with its
last id gets what it missed, once."""

from __future__ import annotations

import json

import httpx
import pytest
from asgiref.sync import sync_to_async

from feeds.models import Room
from tests.support.chat_ws import frame, joined, send
from tests.support.factories import cookie_for
from tests.support.sse_client import ended, open_stream
from tests.support.transports import each_transport, open_feed

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


STORED = ("id", "user", "room", "content", "client_msg_id", "created_at", "prev")


def stored(message: dict) -> dict:
    return {name: message[name] for name in STORED}


def make_rooms(alice) -> tuple[Room, Room]:
    public = Room.objects.create(slug="lobby", title="Lobby")
    private = Room.objects.create(slug="backroom", title="Backroom", is_private=True)
    private.members.add(alice)
    return public, private


async def page_client(server, user) -> httpx.AsyncClient:
    """An HTTP client logged in as `user` with the CSRF cookie a room page sets."""
    client = httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": await cookie_for(user)}, timeout=10
    )
    assert (await client.get("/chat/lobby/")).status_code == 200
    return client


async def http_post(client: httpx.AsyncClient, slug: str, **body) -> httpx.Response:
    token = client.cookies["csrftoken"]
    return await client.post(
        f"/api/chat/rooms/{slug}/messages/", json=body, headers={"X-CSRFToken": token}
    )


@each_transport
async def test_a_room_read_without_websockets_gets_every_message_once(
    server, alice, bob, transport
):
    lobby, _ = await sync_to_async(make_rooms)(alice)
    channel = f"chat-{lobby.pk}"
    session = await cookie_for(alice)
    feed = await open_feed(transport, server.url, session=session, params={"channel": channel})
    http = await page_client(server, alice)
    ws, _ = await joined(server, "lobby", bob)
    try:
        posted = await http_post(http, "lobby", content="over http", client_msg_id="h1")
        assert posted.status_code == 201, posted.text
        again = await http_post(http, "lobby", content="over http", client_msg_id="h1")
        assert again.json()["duplicate"] is True
        await send(ws, type="message", content="over a socket", client_msg_id="w1", mood="ok")
        socket_saw = [(await frame(ws, "broadcast"))["data"] for _ in range(2)]
        got = [e.json() for e in await feed.collect("message", 2)]
        if transport == "sse":
            assert got == socket_saw  # the broadcast's data, field for field
        else:
            # A poll that was not held when a message came reads it from storage, as a
            # socket's backfill does: the stored fields, without the sender's extra ones.
            assert [stored(m) for m in got] == [stored(m) for m in socket_saw]
        assert [m["content"] for m in socket_saw] == ["over http", "over a socket"]
        assert socket_saw[1]["prev"] == socket_saw[0]["id"]
        assert [e for e in await feed.quiet(1.0) if e.event == "message"] == []
        last_id = feed.last_id
        await feed.close()

        missed = [
            (await http_post(http, "lobby", content=f"missed {i}")).json()["message"]["id"]
            for i in range(3)
        ]
        feed = await open_feed(
            transport,
            server.url,
            session=session,
            params={"channel": channel},
            last_event_id=last_id,
        )
        replayed = [e.json() for e in await feed.collect("message", 3)]
        assert [m["id"] for m in replayed] == missed
        assert [m["prev"] for m in replayed] == [socket_saw[1]["id"], *missed[:2]]
        assert [e for e in await feed.quiet(1.0) if e.event == "message"] == []
    finally:
        await feed.close()
        await http.aclose()
        await ws.close()


async def test_a_private_rooms_channel_is_refused_to_non_members(server, alice, bob):
    _, backroom = await sync_to_async(make_rooms)(alice)
    channel = f"chat-{backroom.pk}"
    async with httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": await cookie_for(bob)}, timeout=10
    ) as client:
        for path in ("/events/", "/api/notifications/poll/"):
            response = await client.get(path, params={"channel": channel, "wait": 0})
            assert response.status_code == 403, path
            assert json.loads(response.text)["error"]
    http = await page_client(server, bob)
    try:
        refused = await http_post(http, "backroom", content="let me in")
        assert refused.status_code == 404 and refused.json() == {"error": "no such room"}
    finally:
        await http.aclose()


async def test_a_member_removed_from_a_private_room_loses_its_stream(server, alice):
    _, backroom = await sync_to_async(make_rooms)(alice)
    channel = f"chat-{backroom.pk}"
    session = await cookie_for(alice)
    stream = await open_stream(server.url, session=session, params={"channel": channel})
    try:
        await sync_to_async(backroom.members.remove)(alice)
        assert await ended(stream, timeout=10) == "channels-changed"
    finally:
        await stream.close()
    again = await open_stream(server.url, session=session, params={"channel": channel})
    try:
        assert again.response.status_code == 403
    finally:
        await again.close()
