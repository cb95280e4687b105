"""Sessions and chat sockets: a logout ends that session's sockets, a password change all."""

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async

from feeds.models import Room
from tests.support.chat_ws import chat, close_code, frame, joined, send
from tests.support.factories import cookie_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def lobby(db):
    return Room.objects.create(slug="lobby", title="Lobby")


async def test_a_password_change_closes_the_users_chat_sockets_everywhere(
    server, second_server, lobby, alice, bob
):
    sockets = [(await joined(srv, "lobby", alice))[0] for srv in (server, second_server)]
    bobs, _ = await joined(server, "lobby", bob)
    try:
        alice.set_password("a-completely-new-password-9")
        await sync_to_async(alice.save)()
        codes = await asyncio.gather(*(close_code(ws, timeout=2) for ws in sockets))
        assert codes == [4001, 4001]
        await bobs.ping()  # bob is untouched
    finally:
        await bobs.close()


async def test_a_logout_closes_only_that_sessions_sockets(server, second_server, lobby, alice):
    laptop, phone = await cookie_for(alice), await cookie_for(alice)
    laptop_ws = await chat(server, "lobby", laptop)
    phone_ws = await chat(second_server, "lobby", phone)
    for ws in (laptop_ws, phone_ws):
        await frame(ws, "welcome")
    try:
        async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": laptop}) as http:
            assert (await http.get("/chat/")).status_code == 200
            token = http.cookies["csrftoken"]
            response = await http.post("/logout/", headers={"X-CSRFToken": token})
            assert response.status_code == 302
        assert await close_code(laptop_ws, timeout=2) == 4001
        # The phone's session is still valid: its socket stays open and keeps chatting.
        await send(phone_ws, type="message", content="still signed in")
        got = await frame(phone_ws, "broadcast", timeout=2)
        assert (got["data"]["user"], got["data"]["content"]) == ("alice", "still signed in")
    finally:
        await phone_ws.close()
