"""A password change voids every session: chat sockets close on every process."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from feeds.models import Room
from tests.e2e.test_chat_ws import close_code, joined

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
