"""Moderation over two real server processes: a mute set through one holds on the other,
a ban closes the member's socket on the other (4003) and keeps them out; a report is
acknowledged and queued."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from websockets.exceptions import InvalidStatus

from feeds.models import Report, Room
from tests.support.chat_ws import close_code, frame, joined, send

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def test_a_mute_and_a_ban_hold_on_every_process(server, second_server, alice, bob):
    await sync_to_async(Room.objects.create)(slug="general", title="General", created_by=alice)
    owner, _ = await joined(server, "general", alice)
    member, _ = await joined(second_server, "general", bob)
    try:
        await send(owner, type="message", content="hello", client_msg_id="a-1")
        said = (await frame(member, "broadcast"))["data"]["id"]
        await send(member, type="report", id=said, reason="spam")
        assert await frame(member, "ack") == {"type": "ack", "for": "report", "id": said}
        assert await sync_to_async(Report.objects.filter(message_id=said).exists)()

        await send(owner, type="mute", username="bob", minutes=10)
        assert (await frame(owner, "ack"))["for"] == "mute"
        await send(member, type="message", content="can I?", client_msg_id="b-1")
        error = await frame(member, "error")
        assert (error["code"], error["client_msg_id"]) == ("muted", "b-1")
        assert 590 <= error["remaining_seconds"] <= 600

        await send(member, type="ban", username="alice")  # not a moderator
        assert (await frame(member, "error"))["code"] == "forbidden"
        await send(owner, type="ban", username="bob")
        assert (await frame(owner, "ack"))["for"] == "ban"
        assert await close_code(member, timeout=10) == 4003
        with pytest.raises(InvalidStatus) as refused:
            await joined(server, "general", bob)
        assert refused.value.response.status_code == 403
    finally:
        await owner.close()
        await member.close()
