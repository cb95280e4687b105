"""A private room's owner removes a member: their sockets on the room close on every
server process (4003) and the room leaves their list at once."""

from __future__ import annotations

import httpx
import pytest
from asgiref.sync import sync_to_async

from feeds import membership, services
from notifications.models import Notification
from tests.support.chat_ws import close_code, joined
from tests.support.factories import cookie_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def private_room_with(owner, member):
    room = services.room_create(title="Secret", created_by=owner, is_private=True)
    membership.room_member_add(room=room, by=owner, username=member.username)
    return room


async def room_slugs(server, user) -> list[str]:
    async with httpx.AsyncClient(cookies={"sessionid": await cookie_for(user)}) as client:
        response = await client.get(f"{server.url}/api/chat/rooms/")
    return [room["slug"] for room in response.json()["rooms"]]


async def test_a_removed_member_is_closed_on_every_process_and_loses_the_room(
    server, second_server, alice, bob
):
    room = await sync_to_async(private_room_with)(alice, bob)
    assert await sync_to_async(Notification.objects.filter(recipient=bob).count)() == 1
    assert await room_slugs(server, bob) == ["secret"]
    one, _ = await joined(server, "secret", bob)
    two, _ = await joined(second_server, "secret", bob)
    owner, _ = await joined(second_server, "secret", alice)
    try:
        await sync_to_async(membership.room_member_remove)(room=room, by=alice, username="bob")
        assert await close_code(one, timeout=10) == 4003
        assert await close_code(two, timeout=10) == 4003
        assert await room_slugs(second_server, bob) == []
        assert owner.close_code is None  # the owner stays
    finally:
        for ws in (one, two, owner):
            await ws.close()
