"""Unread counts and read markers over two real server processes: a message said on one
counts as unread on the other, and a `read` on one reaches the user's tabs on both."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import sync_to_async

from feeds import services
from feeds.models import Room
from tests.support.chat_ws import frame, joined, send
from tests.support.factories import cookie_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def unread(server, user) -> dict[str, tuple[int, int]]:
    async with httpx.AsyncClient(cookies={"sessionid": await cookie_for(user)}) as client:
        response = await client.get(f"{server.url}/api/chat/rooms/")
    return {room["slug"]: (room["unread"], room["mentions"]) for room in response.json()["rooms"]}


async def test_unread_counts_and_read_markers_cross_server_processes(
    server, second_server, alice, bob
):
    general = await sync_to_async(Room.objects.create)(slug="general", title="General")
    other = await sync_to_async(Room.objects.create)(slug="other", title="Other")
    for room in (general, other):
        await sync_to_async(services.read_marker_open)(room=room, user=bob)
    talker, _ = await joined(second_server, "general", alice)
    here, _ = await joined(server, "general", bob)
    elsewhere, _ = await joined(second_server, "other", bob)  # another room's tab
    try:
        # No @mention here: a notification's content type, cached by a server process that
        # outlived an earlier test's flush, may be stale (mentions: tests/feeds).
        await send(talker, type="message", content="hi bob", client_msg_id="a")
        await send(talker, type="message", content="anyone?", client_msg_id="b")
        await frame(here, "broadcast")
        newest = (await frame(here, "broadcast"))["data"]["id"]
        assert (await unread(server, bob))["general"] == (2, 0)
        await send(here, type="read", id=newest)
        # Every socket of bob, on both processes and in any room, hears how far he read.
        for ws in (here, elsewhere):
            assert await frame(ws, "read") == {"type": "read", "room": "general", "id": newest}
        assert (await unread(second_server, bob))["general"] == (0, 0)
        await send(here, type="read", id="x")
        assert (await frame(here, "error"))["code"] == "invalid"
    finally:
        for ws in (talker, here, elsewhere):
            await ws.close()
