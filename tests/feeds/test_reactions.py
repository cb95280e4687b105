"""Reactions: a fixed set of emoji, one per user per emoji per message, toggled."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from feeds import selectors, services
from feeds.models import Reaction, Room
from tests.support.communicators import join, next_frame

pytestmark = pytest.mark.django_db(transaction=True)

THUMBS, PARTY = "👍", "🎉"


@pytest.fixture
def room(alice) -> Room:
    return Room.objects.create(slug="general", title="General", created_by=alice)


def say(room: Room, author, content: str = "hi") -> int:
    return services.message_post(room=room, author=author, content=content)[0]["id"]


def react(room, user, message_id, emoji=THUMBS) -> bool:
    return services.message_react(room=room, user=user, message_id=message_id, emoji=emoji)


def test_a_reaction_toggles_and_history_lists_who_reacted_in_order(room, alice, bob):
    mid = say(room, alice)
    say(room, alice)
    assert react(room, bob, mid) is True
    assert react(room, alice, mid) is True
    assert react(room, alice, mid, PARTY) is True
    history, _ = selectors.message_history(room_id=room.pk)
    assert history[0]["reactions"] == {THUMBS: ["bob", "alice"], PARTY: ["alice"]}
    assert "reactions" not in history[1]  # what old clients always got
    assert react(room, bob, mid) is False  # toggled off
    assert Reaction.objects.filter(message_id=mid).count() == 2


def test_bad_emoji_and_deleted_or_unknown_messages_are_refused(room, alice, bob):
    mid = say(room, alice)
    for emoji, target, code in (("💩", mid, "bad_emoji"), (THUMBS, mid + 99, "not_found")):
        with pytest.raises(ValidationError) as exc:
            react(room, bob, target, emoji)
        assert exc.value.code == code
    services.message_delete(room=room, actor=alice, message_id=mid)
    with pytest.raises(ValidationError):
        react(room, bob, mid)
    assert not Reaction.objects.exists()


async def test_reactions_reach_every_socket_and_bad_ones_get_an_error(
    redis_layer, room, alice, bob
):
    mid = await sync_to_async(say)(room, alice)
    a, _ = await join("general", alice)
    b, _ = await join("general", bob)
    try:
        await b.send_json_to({"type": "react", "id": mid, "emoji": THUMBS})
        expected = {"type": "reaction", "id": mid, "emoji": THUMBS, "user": "bob", "on": True}
        for socket in (a, b):
            assert await next_frame(socket, "reaction") == expected
        await b.send_json_to({"type": "react", "id": mid, "emoji": "x"})
        error = await next_frame(b, "error")
        assert error["code"] == "bad_emoji" and THUMBS in error["message"]
        await b.send_json_to({"type": "react", "id": mid, "emoji": THUMBS})
        assert (await next_frame(a, "reaction"))["on"] is False
    finally:
        await a.disconnect()
        await b.disconnect()
