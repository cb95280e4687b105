"""A room over plain HTTP: POST a message, page the history, and the room's SSE channel."""

from __future__ import annotations

import json
from typing import Any

import pytest
from channels_redis.serializers import registry
from django.test import Client

from feeds import chat_channel, live, ratelimit
from feeds.models import Message, Room
from realtime import channels
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)

_serializer = registry.get_serializer("msgpack")


@pytest.fixture
def general(alice) -> Room:
    return Room.objects.create(slug="general", title="General")


@pytest.fixture
def secret(alice) -> Room:
    room = Room.objects.create(slug="secret", title="Secret", is_private=True)
    room.members.add(alice)
    return room


def browser(user) -> Client:
    """A logged-in client that holds the CSRF cookie, as after loading a page."""
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    client.get("/chat/")
    return client


def post(client: Client, slug: str, body: Any, *, csrf: bool = True):
    text = body if isinstance(body, str | bytes) else json.dumps(body)
    headers = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value} if csrf else {}
    return client.post(
        f"/api/chat/rooms/{slug}/messages/", text, content_type="application/json", **headers
    )


def published_chat(ps) -> tuple[list[dict], list[dict]]:
    """The room broadcasts (as sockets get them) and the SSE events published since last read."""
    broadcasts, events = [], []
    while (message := ps.get_message(timeout=0.3)) is not None:
        if message["type"] != "pmessage":
            continue
        decoded = _serializer.deserialize(message["data"])
        if decoded.get("type") == "chat.message":
            broadcasts.append(json.loads(decoded["text"]))
        elif decoded.get("type") == "pulse.event" and decoded["channel"].startswith("chat-"):
            events.append(decoded)
    return broadcasts, events


def test_a_posted_message_is_stored_and_published_as_the_socket_would(general, alice, pubsub):
    response = post(
        browser(alice),
        "general",
        {"content": "  hi <b>there</b> ", "client_msg_id": "h-1", "color": "blue", "user": "eve"},
    )
    assert response.status_code == 201, response.content
    stored = Message.objects.get()
    data = {
        "type": "message",
        "color": "blue",
        "id": stored.pk,
        "user": "alice",  # identity from the session, never the body
        "room": "general",
        "content": "hi <b>there</b>",
        "client_msg_id": "h-1",
        "created_at": stored.created_at.isoformat(),
        "prev": None,
    }
    assert response.json() == {
        "message": {k: data[k] for k in data if k not in ("type", "color")},
        "duplicate": False,
    }
    [broadcast], [event] = published_chat(pubsub)
    assert broadcast["type"] == "broadcast" and broadcast["data"] == data
    assert event["channel"] == live.sse_channel(general.pk) == f"chat-{general.pk}"
    assert (event["event"], event["id"], event["prev"]) == ("message", stored.pk, 0)
    assert json.loads(event["data"]) == data

    second = post(browser(alice), "general", {"content": "again"})
    assert second.status_code == 201
    [_], [event] = published_chat(pubsub)
    assert event["prev"] == stored.pk and json.loads(event["data"])["prev"] == stored.pk


def test_a_resent_client_msg_id_is_stored_and_published_once(general, alice, pubsub):
    client = browser(alice)
    first = post(client, "general", {"content": "once", "client_msg_id": "r-1"})
    again = post(client, "general", {"content": "once", "client_msg_id": "r-1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == {"message": first.json()["message"], "duplicate": True}
    assert Message.objects.count() == 1
    broadcasts, events = published_chat(pubsub)
    assert len(broadcasts) == len(events) == 1

    reused = post(client, "general", {"content": "something else", "client_msg_id": "r-1"})
    assert reused.status_code == 400
    assert reused.json() == {
        "error": "client_msg_id was already used for a different message",
        "code": "invalid",
        "client_msg_id": "r-1",
    }


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ("not json", "bad_json"),
        (b"\xff\xfe", "bad_json"),
        ("[1, 2]", "bad_json"),
        ({"content": "   "}, "invalid"),
        ({"content": 5}, "invalid"),
        ({"content": "x" * 5000}, "invalid"),
        ({"content": "nul \u0000"}, "invalid"),
        ({"content": "hi", "client_msg_id": "x" * 65}, "invalid"),
        ({"content": "hi", "nested": {"a": 1}}, "invalid"),
        ({"type": "typing"}, "unknown_type"),
        ({"type": "nonsense", "content": "hi"}, "unknown_type"),
    ],
)
def test_bad_messages_get_400_with_the_sockets_error_code(general, alice, body, code):
    response = post(browser(alice), "general", body)
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert response.json()["code"] == code and response.json()["error"]
    assert not Message.objects.exists()


def test_without_csrf_anonymous_or_outside_the_room_the_post_is_refused(general, secret, alice):
    bob = make_user("bob")
    no_csrf = post(browser(alice), "general", {"content": "hi"}, csrf=False)
    assert no_csrf.status_code == 403 and no_csrf.json()["error"].startswith("CSRF check failed")
    anonymous = Client().post(
        "/api/chat/rooms/general/messages/", '{"content": "hi"}', content_type="application/json"
    )
    assert anonymous.status_code == 403 and anonymous.json() == {"error": "authentication required"}
    for slug in ("secret", "missing"):  # a private room one may not enter looks missing
        response = post(browser(bob), slug, {"content": "hi"})
        assert response.status_code == 404 and response.json() == {"error": "no such room"}
    assert post(browser(alice), "secret", {"content": "hi"}).status_code == 201
    client = browser(alice)
    put = client.put(
        "/api/chat/rooms/general/messages/",
        HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value,
    )
    assert put.status_code == 405 and put["Allow"] == "GET, POST"
    assert Message.objects.count() == 1


def test_posts_spend_the_users_frame_budget_and_get_429_with_retry_after(
    general, alice, monkeypatch
):
    monkeypatch.setattr(ratelimit, "BUCKET_SIZE", 3)
    monkeypatch.setattr(ratelimit, "REFILL_PER_SECOND", 0.01)
    client = browser(alice)
    statuses = [
        post(client, "general", {"content": f"m{i}", "client_msg_id": f"c{i}"}).status_code
        for i in range(4)
    ]
    assert statuses == [201, 201, 201, 429]
    refused = post(client, "general", {"content": "more", "client_msg_id": "c9"})
    assert refused.status_code == 429 and refused["Retry-After"] == "1"
    assert refused.json() == {
        "error": "too many frames: slow down",
        "code": "rate_limited",
        "client_msg_id": "c9",
    }
    assert Message.objects.count() == 3


def test_history_pages_forward_after_an_id_with_prev_and_the_rooms_channel(general, alice):
    client = browser(alice)
    ids = [post(client, "general", {"content": f"m{i}"}).json()["message"]["id"] for i in range(5)]
    page = client.get(f"/api/chat/rooms/general/messages/?after={ids[1]}&limit=2").json()
    assert [m["id"] for m in page["messages"]] == ids[2:4]
    assert [m["prev"] for m in page["messages"]] == ids[1:3]
    assert page["has_more"] is True and page["after"] == ids[1]
    assert page["channel"] == f"chat-{general.pk}"
    newest = client.get("/api/chat/rooms/general/messages/?limit=2").json()
    assert [m["id"] for m in newest["messages"]] == ids[3:]
    back = client.get(f"/api/chat/rooms/general/messages/?before={ids[3]}").json()
    assert [m["id"] for m in back["messages"]] == ids[:3] and back["has_more"] is False
    for query in ("after=x", "limit=0", "limit=101", f"after=1&before={ids[0]}", "after=-1"):
        response = client.get(f"/api/chat/rooms/general/messages/?{query}")
        assert response.status_code == 400 and response.json()["code"] == "invalid", query


def test_the_rooms_channel_is_readable_by_those_who_may_enter_it(general, secret, alice):
    bob = make_user("bob")
    assert channels.can_read(alice, f"chat-{secret.pk}")
    assert not channels.can_read(bob, f"chat-{secret.pk}")
    assert channels.can_read(bob, f"chat-{general.pk}")
    assert not channels.can_read(bob, "chat-999999")
    assert not channels.can_read(bob, "chat-0") and not channels.can_read(bob, "chat-general")
    assert channels.replay_of(f"chat-{general.pk}") == channels.STORAGE


def test_the_channel_replays_the_rooms_messages_after_an_id(general, secret, alice):
    client = browser(alice)
    ids = [post(client, "general", {"content": f"m{i}"}).json()["message"]["id"] for i in range(3)]
    post(client, "secret", {"content": "elsewhere"})
    replay = chat_channel.ChatReplay()
    channel = f"chat-{general.pk}"
    assert replay.current_id(channel, str(general.pk)) == ids[-1]
    events = replay.events_after(channel, str(general.pk), ids[0], 100)
    assert [e.id for e in events] == ids[1:]
    assert [json.loads(e.data)["prev"] for e in events] == ids[:2]
    assert {e.type for e in events} == {"message"}
