"""Editing and deleting chat messages: the service rules, the socket frames, the HTTP API."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from feeds import selectors, services
from feeds.models import Message, Room
from tests.support.communicators import join, next_frame
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def room(alice) -> Room:
    return Room.objects.create(slug="general", title="General", created_by=alice)


def say(room: Room, author, content: str = "helo") -> int:
    payload, _ = services.message_post(room=room, author=author, content=content)
    return payload["id"]


def refusal_code(call, **kw) -> str:
    with pytest.raises(ValidationError) as exc:
        call(**kw)
    return exc.value.code


# ---------------------------------------------------------------- services


def test_an_author_edits_within_the_window_and_history_shows_the_new_text(room, bob):
    first, mid = say(room, bob, "one"), say(room, bob)
    edited = services.message_edit(room=room, editor=bob, message_id=mid, content="hello")
    assert edited["content"] == "hello" and edited["prev"] == first and "edited_at" in edited
    history, _ = selectors.message_history(room_id=room.pk)
    assert history[-1] == edited
    assert "edited_at" not in history[0]  # an unchanged message is as it always was


def test_an_edit_after_the_window_or_of_someone_elses_message_is_refused(room, alice, bob):
    mid = say(room, bob)
    assert refusal_code(
        services.message_edit, room=room, editor=alice, message_id=mid, content="x"
    ) == ("forbidden")
    Message.objects.filter(pk=mid).update(created_at=timezone.now() - timedelta(minutes=16))
    assert (
        refusal_code(services.message_edit, room=room, editor=bob, message_id=mid, content="x")
        == "edit_window_over"
    )
    assert Message.objects.get(pk=mid).content == "helo"


def test_the_edit_window_is_a_setting(room, bob, settings):
    settings.CHAT_EDIT_WINDOW_SECONDS = 0
    mid = say(room, bob)
    Message.objects.filter(pk=mid).update(created_at=timezone.now() - timedelta(seconds=1))
    assert (
        refusal_code(services.message_edit, room=room, editor=bob, message_id=mid, content="x")
        == "edit_window_over"
    )


def test_a_deleted_message_is_a_tombstone_in_its_place(room, bob):
    before, mid, after = say(room, bob, "a"), say(room, bob, "secret"), say(room, bob, "c")
    services.message_delete(room=room, actor=bob, message_id=mid)
    history, _ = selectors.message_history(room_id=room.pk, after=before)
    assert [(m["id"], m["prev"]) for m in history] == [(mid, before), (after, mid)]
    assert history[0]["deleted"] is True and history[0]["content"] == ""
    assert Message.objects.get(pk=mid).content == ""  # the text is gone, not hidden
    # Deleting again is a safe retry; editing a tombstone finds nothing.
    services.message_delete(room=room, actor=bob, message_id=mid)
    assert (
        refusal_code(services.message_edit, room=room, editor=bob, message_id=mid, content="x")
        == "not_found"
    )


def test_moderators_and_staff_delete_anyones_message_others_only_their_own(room, alice, bob):
    carol = make_user("carol")
    staff = make_user("staffer", is_staff=True)
    ids = [say(room, bob) for _ in range(3)]
    assert (
        refusal_code(services.message_delete, room=room, actor=carol, message_id=ids[0])
        == "forbidden"
    )
    services.message_delete(room=room, actor=alice, message_id=ids[0])  # the room's creator
    services.message_delete(room=room, actor=staff, message_id=ids[1])
    services.message_delete(room=room, actor=bob, message_id=ids[2])
    assert Message.objects.filter(deleted_at__isnull=False).count() == 3


def test_a_message_of_another_room_is_not_found(room, bob):
    other = Room.objects.create(slug="other", title="Other")
    mid = say(other, bob)
    assert (
        refusal_code(services.message_delete, room=room, actor=bob, message_id=mid) == "not_found"
    )


def test_a_resend_of_an_edited_or_deleted_message_is_still_a_duplicate(room, bob):
    payload, _ = services.message_post(room=room, author=bob, content="helo", client_msg_id="c1")
    services.message_edit(room=room, editor=bob, message_id=payload["id"], content="hello")
    again, created = services.message_post(
        room=room, author=bob, content="helo", client_msg_id="c1"
    )
    assert not created and again["id"] == payload["id"]


@pytest.mark.django_db  # in a transaction, so on_commit callbacks can be seen
def test_changes_are_published_only_after_commit(room, bob, django_capture_on_commit_callbacks):
    mid = say(room, bob)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        services.message_edit(room=room, editor=bob, message_id=mid, content="hello")
        services.message_edit(room=room, editor=bob, message_id=mid, content="hello")
        services.message_delete(room=room, actor=bob, message_id=mid)
    assert len(callbacks) == 2  # the unchanged second edit tells no one


# ---------------------------------------------------------------- the socket


async def test_edits_and_deletes_reach_every_socket_in_the_room(redis_layer, room, alice, bob):
    a, _ = await join("general", alice)
    b, _ = await join("general", bob)
    try:
        await b.send_json_to({"type": "message", "content": "helo"})
        mid = (await next_frame(a, "broadcast"))["data"]["id"]
        await b.send_json_to({"type": "edit", "id": mid, "content": " hello "})
        for socket in (a, b):
            edited = await next_frame(socket, "message_edited")
            assert edited["data"]["id"] == mid and edited["data"]["content"] == "hello"
            assert edited["data"]["edited_at"] and edited["data"]["prev"] is None
        await a.send_json_to({"type": "delete", "id": mid})  # alice created the room
        for socket in (a, b):
            assert await next_frame(socket, "message_deleted") == {
                "type": "message_deleted",
                "id": mid,
            }
    finally:
        await a.disconnect()
        await b.disconnect()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        ({"type": "edit", "id": "1", "content": "x"}, "invalid"),
        ({"type": "edit", "content": "x"}, "invalid"),
        ({"type": "edit", "id": 1, "content": "  "}, "invalid"),
        ({"type": "delete", "id": -1}, "invalid"),
        ({"type": "delete", "id": 999999}, "not_found"),
    ],
)
async def test_bad_edit_and_delete_frames_get_an_error(redis_layer, room, bob, frame, code):
    socket, _ = await join("general", bob)
    try:
        await socket.send_json_to(frame)
        error = await next_frame(socket, "error")
        assert error["code"] == code, error
    finally:
        await socket.disconnect()


async def test_changing_someone_elses_message_gets_forbidden_and_changes_nothing(
    redis_layer, room, alice, bob
):
    mid = await sync_to_async(say)(room, alice)
    socket, _ = await join("general", bob)
    try:
        for frame in (
            {"type": "edit", "id": mid, "content": "mine"},
            {"type": "delete", "id": mid},
        ):
            await socket.send_json_to(frame)
            assert (await next_frame(socket, "error"))["code"] == "forbidden"
        message = await sync_to_async(Message.objects.get)(pk=mid)
        assert (message.content, message.deleted_at) == ("helo", None)
    finally:
        await socket.disconnect()


# ---------------------------------------------------------------- HTTP


def browser(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/chat/")
    return client


def change(client: Client, method: str, mid: int, body: dict | None = None):
    csrf = client.cookies["csrftoken"].value
    return client.generic(
        method,
        f"/api/chat/rooms/general/messages/{mid}/",
        json.dumps(body or {}),
        content_type="application/json",
        HTTP_X_CSRFTOKEN=csrf,
    )


def test_patch_edits_and_delete_deletes_over_http(room, bob):
    mid = say(room, bob)
    client = browser(bob)
    response = change(client, "PATCH", mid, {"content": "hello"})
    assert response.status_code == 200
    assert response.json()["message"]["content"] == "hello"
    assert change(client, "DELETE", mid).status_code == 204
    assert Message.objects.get(pk=mid).deleted_at is not None


def test_http_refusals_are_json_with_the_frames_code(room, alice, bob):
    mid = say(room, alice)
    client = browser(bob)
    cases = [
        ("PATCH", mid, {"content": "x"}, 403, "forbidden"),
        ("DELETE", mid, None, 403, "forbidden"),
        ("DELETE", 999999, None, 404, "not_found"),
        ("PATCH", mid, {"content": ""}, 400, "invalid"),
        ("PATCH", mid, {"type": "message", "content": "x"}, 400, "unknown_type"),
    ]
    for method, target, body, status, code in cases:
        response = change(client, method, target, body)
        assert (response.status_code, response.json()["code"]) == (status, code), (method, body)
    assert client.post(f"/api/chat/rooms/general/messages/{mid}/").status_code in (403, 405)
    assert Message.objects.get(pk=mid).content == "helo"


@pytest.mark.django_db  # in a transaction, so on_commit callbacks can be seen
def test_admin_delete_leaves_a_tombstone(room, bob, django_capture_on_commit_callbacks):
    mid = say(room, bob)
    admin = make_user("boss", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(admin)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post(f"/admin/feeds/message/{mid}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert Message.objects.get(pk=mid).deleted_at is not None
    assert len(callbacks) == 1  # message_deleted, after commit
