"""Private rooms run by their members: the rules, the room page's forms, the live kick."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.test import Client

from feeds import membership, selectors, services
from feeds.models import Room
from notifications import preferences
from notifications.models import Notification
from tests.support.communicators import closed_with, join
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def secret(alice) -> Room:
    return services.room_create(title="Secret", created_by=alice, is_private=True)


def refusal(call, **kw) -> str:
    with pytest.raises(ValidationError) as exc:
        call(**kw)
    return exc.value.code


def test_a_private_room_starts_with_its_creator_as_owner(secret, alice, bob):
    assert membership.room_members(room=secret) == [{"username": "alice", "role": "owner"}]
    assert [r["slug"] for r in selectors.room_list(user=bob)] == []


def test_an_added_member_sees_the_room_and_is_notified_once(secret, alice, bob):
    membership.room_member_add(room=secret, by=alice, username="bob")
    membership.room_member_add(room=secret, by=alice, username="bob")  # again: nothing new
    assert [r["slug"] for r in selectors.room_list(user=bob)] == ["secret"]
    (note,) = Notification.objects.filter(recipient=bob)
    assert (note.title, note.url) == ("alice added you to Secret", "/chat/secret/")


def test_an_invitation_has_its_kind_and_is_not_created_for_who_muted_chat(secret, alice, bob):
    membership.room_member_add(room=secret, by=alice, username="bob")
    assert Notification.objects.get(recipient=bob).kind == membership.INVITE_KIND
    preferences.preferences_update(user=alice, data={"categories": {"chat": {"in_app": False}}})
    other = services.room_create(title="Other", created_by=bob, is_private=True)
    membership.room_member_add(room=other, by=bob, username="alice")
    assert [r["slug"] for r in selectors.room_list(user=alice)] == ["other", "secret"]
    assert not Notification.objects.filter(recipient=alice).exists()


def test_only_the_owner_and_admins_manage_members(secret, alice, bob, charlie):
    membership.room_member_add(room=secret, by=alice, username="bob")
    call = membership.room_member_add
    assert refusal(call, room=secret, by=bob, username="charlie") == "forbidden"
    assert refusal(call, room=secret, by=charlie, username="charlie") == "forbidden"
    membership.room_member_promote(room=secret, by=alice, username="bob")
    membership.room_member_add(room=secret, by=bob, username="charlie")
    assert membership.room_members(room=secret) == [
        {"username": "alice", "role": "owner"},
        {"username": "bob", "role": "admin"},
        {"username": "charlie", "role": "member"},
    ]


def test_bad_member_changes_are_refused_and_change_nothing(secret, alice, bob):
    general = Room.objects.create(slug="general", title="General", created_by=alice)
    add, remove = membership.room_member_add, membership.room_member_remove
    assert refusal(add, room=secret, by=alice, username="nobody") == "not_found"
    assert refusal(remove, room=secret, by=alice, username="bob") == "not_found"
    assert refusal(remove, room=secret, by=alice, username="alice") == "forbidden"  # the owner
    assert refusal(add, room=general, by=alice, username="bob") == "invalid"
    assert list(secret.members.values_list("username", flat=True)) == ["alice"]


def test_an_admin_cannot_remove_another_admin_but_the_owner_can(secret, alice, bob, charlie):
    for name in ("bob", "charlie"):
        membership.room_member_add(room=secret, by=alice, username=name)
        membership.room_member_promote(room=secret, by=alice, username=name)
    remove = membership.room_member_remove
    assert refusal(remove, room=secret, by=bob, username="charlie") == "forbidden"
    remove(room=secret, by=alice, username="charlie")
    assert not secret.admins.filter(pk=charlie.pk).exists()


def test_room_admins_may_delete_anyones_message(secret, alice, bob, charlie):
    for name in ("bob", "charlie"):
        membership.room_member_add(room=secret, by=alice, username=name)
    payload, _ = services.message_post(room=secret, author=charlie, content="spam")
    membership.room_member_promote(room=secret, by=alice, username="bob")
    services.message_delete(room=secret, actor=bob, message_id=payload["id"])


async def test_a_removed_member_is_closed_with_4003(redis_layer, secret, alice, bob):
    await sync_to_async(membership.room_member_add)(room=secret, by=alice, username="bob")
    socket, _ = await join("secret", bob)
    await sync_to_async(membership.room_member_remove)(room=secret, by=alice, username="bob")
    assert await closed_with(socket, timeout=5) == 4003


# ---------------------------------------------------------------- the pages


def signed_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_anyone_creates_a_private_room_from_the_room_list(bob):
    response = signed_in(bob).post("/chat/", {"title": "Book club", "private": "on"})
    assert response.status_code == 302 and response["Location"] == "/chat/book-club/"
    room = Room.objects.get(slug="book-club")
    assert room.is_private and list(room.members.all()) == [bob]


def test_the_room_page_adds_removes_and_promotes(secret, alice, bob):
    owner = signed_in(alice)
    url = "/chat/secret/members/"
    assert owner.post(url, {"action": "add", "username": "bob"}).status_code == 302
    assert owner.post(url, {"action": "promote", "username": "bob"}).status_code == 302
    page = owner.get("/chat/secret/").content.decode()
    assert 'data-username="bob" data-role="admin"' in page
    assert owner.post(url, {"action": "remove", "username": "bob"}).status_code == 302
    assert signed_in(bob).get("/chat/secret/").status_code == 404


def test_the_room_page_refuses_clearly(secret, alice, bob, charlie):
    url = "/chat/secret/members/"
    response = signed_in(alice).post(url, {"action": "add", "username": "nobody"})
    assert response.status_code == 404 and b"no user named" in response.content
    response = signed_in(alice).post(url, {"action": "fly", "username": "bob"})
    assert response.status_code == 400
    assert signed_in(charlie).post(url, {"action": "add", "username": "bob"}).status_code == 404
    membership.room_member_add(room=secret, by=alice, username="bob")
    response = signed_in(bob).post(url, {"action": "add", "username": "charlie"})
    assert response.status_code == 403 and b"owner and admins" in response.content


def test_a_member_who_leaves_is_sent_to_the_room_list(secret, alice, bob):
    make_user("dora")
    membership.room_member_add(room=secret, by=alice, username="bob")
    membership.room_member_promote(room=secret, by=alice, username="bob")
    response = signed_in(bob).post("/chat/secret/members/", {"action": "remove", "username": "bob"})
    assert response.status_code == 302 and response["Location"] == "/chat/"
