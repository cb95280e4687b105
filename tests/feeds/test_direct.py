"""Direct messages: one private room per pair of people, made on first use."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError
from django.test import Client

from feeds import direct, membership, selectors, services
from feeds.models import Room

pytestmark = pytest.mark.django_db


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_either_person_opens_the_same_private_room(alice, bob, charlie):
    room = direct.direct_room_open(user=alice, username="bob")
    assert direct.direct_room_open(user=bob, username="alice") == room
    assert room.is_private and set(room.members.values_list("username", flat=True)) == {
        "alice",
        "bob",
    }
    assert [r["slug"] for r in selectors.room_list(user=charlie)] == []


def test_the_room_list_names_the_other_person(alice, bob):
    direct.direct_room_open(user=alice, username="bob")
    (row,) = selectors.room_list(user=alice)
    assert (row["title"], row["direct"]) == ("bob", True)
    (row,) = selectors.room_list(user=bob)
    assert row["title"] == "alice"


def test_unknown_users_and_oneself_are_refused(alice):
    for name, code in (("nobody", "not_found"), ("alice", "invalid")):
        with pytest.raises(ValidationError) as exc:
            direct.direct_room_open(user=alice, username=name)
        assert exc.value.code == code


def test_nobody_manages_a_direct_message_and_room_titles_cannot_take_its_slugs(alice, bob, charlie):
    room = direct.direct_room_open(user=alice, username="bob")
    with pytest.raises(ValidationError):
        membership.room_member_add(room=room, by=alice, username="charlie")
    assert services.room_create(title="dm 1 2", created_by=alice).slug == "room-dm-1-2"
    assert services.room_create(title="DM", created_by=alice).slug == "room-dm"


def test_the_chat_page_form_opens_it_and_a_link_finds_it(alice, bob):
    client = signed_in(alice)
    response = client.get("/chat/dm/bob/")
    assert response.status_code == 200 and b"Start the conversation" in response.content
    assert not Room.objects.exists()  # a link alone makes nothing
    response = client.post("/chat/dm/", {"username": "bob"})
    room = Room.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/chat/{room.slug}/"
    assert signed_in(bob).get("/chat/dm/alice/")["Location"] == f"/chat/{room.slug}/"
    page = signed_in(bob).get(f"/chat/{room.slug}/").content.decode()
    assert 'id="dm-presence" data-user="alice"' in page


def test_bad_direct_message_requests_are_refused_clearly(alice, charlie):
    client = signed_in(alice)
    response = client.post("/chat/dm/", {"username": "nobody"})
    assert response.status_code == 404 and b"no user named" in response.content
    assert client.post("/chat/dm/", {"username": ""}).status_code == 400
    assert client.get("/chat/dm/nobody/").status_code == 404
    room = direct.direct_room_open(user=alice, username="charlie")
    assert signed_in(charlie).get(f"/chat/{room.slug}/").status_code == 200
