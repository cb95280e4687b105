"""Blocking: a blocked user's direct messages and mentions stop reaching the blocker."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.test import Client

from feeds import blocking, direct, selectors, services
from feeds.models import Room
from notifications.models import Notification
from tests.support.communicators import join, next_frame

pytestmark = pytest.mark.django_db(transaction=True)


def test_a_blocked_user_cannot_message_or_open_a_dm_with_the_blocker(alice, bob, charlie):
    room = direct.direct_room_open(user=alice, username="bob")
    blocking.user_block(blocker=bob, username="alice")
    with pytest.raises(ValidationError) as exc:
        services.message_post(room=room, author=alice, content="hi bob")
    assert exc.value.code == "blocked"
    assert services.message_post(room=room, author=bob, content="bye")[1] is True  # bob may
    blocking.user_block(blocker=charlie, username="alice")
    with pytest.raises(ValidationError) as exc:
        direct.direct_room_open(user=alice, username="charlie")
    assert exc.value.code == "blocked"
    blocking.user_unblock(blocker=bob, username="alice")
    assert services.message_post(room=room, author=alice, content="hi again")[1] is True


def test_a_blocked_users_mentions_notify_nobody_and_count_as_plain_unread(alice, bob, charlie):
    general = Room.objects.create(slug="general", title="General")
    services.read_marker_open(room=general, user=bob)
    blocking.user_block(blocker=bob, username="alice")
    services.message_post(room=general, author=alice, content="@bob hey")
    services.message_post(room=general, author=charlie, content="@bob hi")
    assert list(Notification.objects.values_list("actor__username", flat=True)) == ["charlie"]
    assert selectors.unread_counts(user=bob) == {general.pk: (2, 1)}


def test_blocking_oneself_or_nobody_is_refused(alice):
    for name, code in (("alice", "invalid"), ("nobody", "not_found")):
        with pytest.raises(ValidationError) as exc:
            blocking.user_block(blocker=alice, username=name)
        assert exc.value.code == code


def test_the_dm_page_blocks_and_unblocks_with_a_form(alice, bob):
    room = direct.direct_room_open(user=alice, username="bob")
    client = Client()
    client.force_login(bob)
    page = client.get(f"/chat/{room.slug}/").content.decode()
    assert 'value="block"' in page
    response = client.post("/chat/dm/alice/block/", {"action": "block"})
    assert response.status_code == 302 and response.url == "/chat/dm/alice/"
    assert blocking.is_blocked(blocker_id=bob.pk, blocked_id=alice.pk)
    assert 'value="unblock"' in client.get(f"/chat/{room.slug}/").content.decode()
    assert client.post("/chat/dm/nobody/block/", {"action": "block"}).status_code == 404
    assert client.post("/chat/dm/alice/block/", {"action": "x"}).status_code == 400
    client.post("/chat/dm/alice/block/", {"action": "unblock"})
    assert not blocking.is_blocked(blocker_id=bob.pk, blocked_id=alice.pk)


async def test_a_blocked_senders_message_frame_gets_an_error(redis_layer, alice, bob):
    room = await sync_to_async(direct.direct_room_open)(user=alice, username="bob")
    await sync_to_async(blocking.user_block)(blocker=bob, username="alice")
    socket, _ = await join(room.slug, alice)
    try:
        await socket.send_json_to({"type": "message", "content": "hi", "client_msg_id": "c-1"})
        error = await next_frame(socket, "error")
        assert (error["code"], error["client_msg_id"]) == ("blocked", "c-1")
    finally:
        await socket.disconnect()
