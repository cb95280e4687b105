"""The chat consumer, rule by rule, through the full ASGI stack (origin check, session auth)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.db import OperationalError
from django.test import Client

from feeds import heartbeat, presence, protocol, services
from feeds.models import CONTENT_MAX, Message, Room
from notifications.models import Notification
from realtime import connection_caps
from realtime.redis_state import async_client, key
from tests.support.communicators import closed_with, frames_until, join, next_frame, open_socket
from tests.support.factories import session_cookie
from tests.support.waiting import until

pytestmark = pytest.mark.django_db(transaction=True)


def make_room(slug: str = "general", *, private: bool = False, members=()) -> Room:
    room = Room.objects.create(slug=slug, title=slug.title(), is_private=private)
    room.members.set(members)
    return room


def log_out(session_key: str) -> None:
    client = Client()
    client.cookies["sessionid"] = session_key
    client.logout()  # sends user_logged_out with that session, as the logout view does


def post(room: Room, author, content: str) -> Message:
    return Message.objects.create(room=room, author=author, content=content)


# ---------------------------------------------------------------- handshake


async def test_anonymous_handshake_is_refused(redis_layer):
    await sync_to_async(make_room)()
    socket = await open_socket("general")
    assert await socket.connect(timeout=5) == (False, 1000)


async def test_a_foreign_origin_is_refused(redis_layer, alice):
    await sync_to_async(make_room)()
    # Another site, and the same host on another port or scheme (same-site, not same-origin).
    for origin in ("https://evil.example", "http://testserver:8080", "https://testserver"):
        socket = await open_socket("general", alice, origin=origin)
        connected, _ = await socket.connect(timeout=5)
        assert not connected, origin
    no_origin = await open_socket("general", alice, origin=None)
    connected, _ = await no_origin.connect(timeout=5)
    assert not connected


async def test_unknown_and_foreign_private_rooms_are_refused_alike(redis_layer, alice, charlie):
    await sync_to_async(make_room)("secret", private=True, members=[alice])
    for slug in ("nope", "secret"):
        socket = await open_socket(slug, charlie)
        assert await socket.connect(timeout=5) == (False, 1000), slug
    socket, welcome = await join("secret", alice)
    assert welcome["room"] == "secret"
    await socket.disconnect()


async def test_an_inactive_users_session_is_refused(redis_layer, alice):
    await sync_to_async(make_room)()
    socket = await open_socket("general", alice)  # session made while active
    alice.is_active = False
    await sync_to_async(alice.save)()
    connected, _ = await socket.connect(timeout=5)
    assert not connected


async def test_welcome_has_the_last_50_messages_oldest_first_and_who_is_online(
    redis_layer, alice, bob
):
    room = await sync_to_async(make_room)()
    posted = [await sync_to_async(post)(room, bob, f"m{i}") for i in range(55)]
    socket, welcome = await join("general", alice)
    assert welcome["message"] == "Connected to WebSocket server"
    assert (welcome["room"], welcome["user"], welcome["online"]) == ("general", "alice", ["alice"])
    assert [m["id"] for m in welcome["history"]] == [m.pk for m in posted[-50:]]
    assert welcome["history"][-1] == {
        "id": posted[-1].pk,
        "user": "bob",
        "room": "general",
        "content": "m54",
        "client_msg_id": "",
        "created_at": posted[-1].created_at.isoformat(),
        "prev": posted[-2].pk,
    }
    await socket.disconnect()


# ---------------------------------------------------------------- messages


async def test_a_message_is_stored_then_broadcast_with_the_clients_fields(redis_layer, alice):
    await sync_to_async(make_room)()
    socket, _ = await join("general", alice)
    await socket.send_json_to(
        {
            "type": "message",
            "content": "  hello <b>world</b>  ",
            "client_msg_id": "c-1",
            "user": "mallory",  # identity comes from the session, never the payload
            "color": "blue",
        }
    )
    frame = await next_frame(socket, "broadcast")
    data = frame["data"]
    stored = await sync_to_async(Message.objects.select_related("author").get)(pk=data["id"])
    assert (stored.author.username, stored.content, stored.client_msg_id) == (
        "alice",
        "hello <b>world</b>",
        "c-1",
    )
    assert data == {
        "type": "message",
        "color": "blue",
        "id": stored.pk,
        "user": "alice",
        "room": "general",
        "content": "hello <b>world</b>",
        "client_msg_id": "c-1",
        "created_at": stored.created_at.isoformat(),
        "prev": None,  # the room's first message
    }
    assert isinstance(frame["timestamp"], int) and frame["timestamp"] > 1.7e12
    await socket.disconnect()


async def test_every_connection_in_the_room_gets_the_broadcast(redis_layer, alice, bob):
    await sync_to_async(make_room)()
    await sync_to_async(make_room)("other")
    a, _ = await join("general", alice)
    b, _ = await join("general", bob)
    elsewhere, _ = await join("other", bob)
    await a.send_json_to({"type": "message", "content": "hi bob"})
    for socket in (a, b):
        frame = await next_frame(socket, "broadcast")
        assert (frame["data"]["user"], frame["data"]["content"]) == ("alice", "hi bob")
    await elsewhere.send_json_to({"type": "message", "content": "marker"})
    frame = await next_frame(elsewhere, "broadcast")
    assert frame["data"]["content"] == "marker"  # nothing from the other room before it
    for socket in (a, b, elsewhere):
        await socket.disconnect()


async def test_a_resent_client_msg_id_is_stored_and_broadcast_once(redis_layer, alice, bob):
    await sync_to_async(make_room)()
    a, _ = await join("general", alice)
    b, _ = await join("general", bob)
    frame = {"type": "message", "content": "only once", "client_msg_id": "resend-1"}
    await a.send_json_to(frame)
    first = await next_frame(a, "broadcast")
    await a.send_json_to(frame)
    ack = await next_frame(a, "ack")
    assert ack == {
        "type": "ack",
        "for": "message",
        "duplicate": True,
        "id": first["data"]["id"],
        "client_msg_id": "resend-1",
        "room": "general",
        "created_at": first["data"]["created_at"],
    }
    await a.send_json_to({"type": "message", "content": "next"})
    seen = [
        f["data"]["content"]
        for f in await frames_until(b, _content_is("next"))
        if f["type"] == "broadcast"
    ]
    assert seen == ["only once", "next"]
    count = await sync_to_async(Message.objects.filter(client_msg_id="resend-1").count)()
    assert count == 1
    await a.disconnect()
    await b.disconnect()


def _content_is(content: str):
    return lambda f: f["type"] == "broadcast" and f["data"]["content"] == content


async def test_client_fields_cannot_override_the_stored_message(redis_layer, alice):
    await sync_to_async(make_room)("general")
    await sync_to_async(make_room)("other")
    socket, _ = await join("general", alice)
    forged = {"id": 1, "room": "other", "created_at": "1970-01-01T00:00:00+00:00"}
    await socket.send_json_to({"type": "message", "content": "real", **forged})
    data = (await next_frame(socket, "broadcast"))["data"]
    stored = await sync_to_async(Message.objects.select_related("room").get)(pk=data["id"])
    assert (data["room"], data["content"], data["created_at"]) == (
        "general",
        "real",
        stored.created_at.isoformat(),
    )
    assert (stored.room.slug, stored.content) == ("general", "real")
    # `content` is the stored (trimmed) text, never an extra copy of the client's
    await socket.send_json_to({"type": "message", "content": "  padded  "})
    assert (await next_frame(socket, "broadcast"))["data"]["content"] == "padded"
    await socket.disconnect()


async def test_a_client_msg_id_is_per_room(redis_layer, alice):
    await sync_to_async(make_room)("general")
    await sync_to_async(make_room)("other")
    general, _ = await join("general", alice)
    other, _ = await join("other", alice)
    await general.send_json_to({"type": "message", "content": "one", "client_msg_id": "c-1"})
    first = (await next_frame(general, "broadcast"))["data"]
    await other.send_json_to({"type": "message", "content": "two", "client_msg_id": "c-1"})
    second = (await next_frame(other, "broadcast"))["data"]
    assert (second["room"], second["content"]) == ("other", "two")
    assert second["id"] != first["id"]
    await general.disconnect()
    await other.disconnect()


async def test_a_client_msg_id_reused_for_other_content_is_refused(redis_layer, alice):
    await sync_to_async(make_room)()
    socket, _ = await join("general", alice)
    await socket.send_json_to({"type": "message", "content": "one", "client_msg_id": "c-1"})
    await next_frame(socket, "broadcast")
    await socket.send_json_to({"type": "message", "content": "two", "client_msg_id": "c-1"})
    frame = await next_frame(socket)
    assert (frame["type"], frame["code"], frame["client_msg_id"]) == ("error", "invalid", "c-1")
    assert await sync_to_async(Message.objects.count)() == 1
    await socket.disconnect()


async def test_a_failing_frame_gets_unavailable_and_the_socket_stays_usable(
    redis_layer, alice, monkeypatch, caplog
):
    await sync_to_async(make_room)()
    socket, _ = await join("general", alice)

    def broken(**kw):
        raise OperationalError("database is locked")

    with monkeypatch.context() as patch:
        patch.setattr(services, "message_post", broken)
        await socket.send_json_to({"type": "message", "content": "hi", "client_msg_id": "c-1"})
        frame = await next_frame(socket)
    assert frame == {
        "type": "error",
        "code": protocol.UNAVAILABLE,
        "message": frame["message"],
        "client_msg_id": "c-1",
    }
    assert [r.levelname for r in caplog.records if "failed" in r.getMessage()] == ["ERROR"]
    await socket.send_json_to({"type": "message", "content": "hi", "client_msg_id": "c-1"})
    assert (await next_frame(socket, "broadcast"))["data"]["content"] == "hi"
    await socket.disconnect()


async def test_join_is_acknowledged_and_cannot_change_identity(redis_layer, alice):
    await sync_to_async(make_room)()
    socket, _ = await join("general", alice)
    await socket.send_json_to({"type": "join", "user": "bob"})
    assert await next_frame(socket, "ack") == {
        "type": "ack",
        "for": "join",
        "room": "general",
        "user": "alice",
    }
    await socket.send_json_to({"type": "message", "content": "who am i"})
    assert (await next_frame(socket, "broadcast"))["data"]["user"] == "alice"
    await socket.disconnect()


async def test_history_pages_before_and_after_an_id(redis_layer, alice):
    room = await sync_to_async(make_room)()
    ids = [(await sync_to_async(post)(room, alice, f"m{i}")).pk for i in range(130)]
    socket, welcome = await join("general", alice)
    assert [m["id"] for m in welcome["history"]] == ids[-50:]

    await socket.send_json_to({"type": "history", "before": ids[-50]})
    older = await next_frame(socket, "history")
    assert [m["id"] for m in older["messages"]] == ids[:80]
    assert (older["before"], older["has_more"]) == (ids[-50], False)

    await socket.send_json_to({"type": "history", "after": ids[9]})
    newer = await next_frame(socket, "history")
    assert [m["id"] for m in newer["messages"]] == ids[10:110]
    assert newer["has_more"] is True
    await socket.send_json_to({"type": "history", "after": ids[109], "limit": 5})
    rest = await next_frame(socket, "history")
    assert [m["id"] for m in rest["messages"]] == ids[110:115]
    assert rest["has_more"] is True
    await socket.disconnect()


async def test_typing_reaches_the_others_throttled(redis_layer, alice, bob):
    await sync_to_async(make_room)()
    a, _ = await join("general", alice)
    b, _ = await join("general", bob)
    for _ in range(5):
        await a.send_json_to({"type": "typing"})
    await a.send_json_to({"type": "message", "content": "done typing"})
    frames = await frames_until(b, _content_is("done typing"))
    assert [f for f in frames if f["type"] == "typing"] == [{"type": "typing", "user": "alice"}]
    own = await frames_until(a, _content_is("done typing"))
    assert [f for f in own if f["type"] == "typing"] == []  # not echoed to the typist
    await a.disconnect()
    await b.disconnect()


# ---------------------------------------------------------------- bad input


BAD_FRAMES = [
    ("not json", protocol.BAD_JSON),
    ("[1, 2]", protocol.BAD_JSON),
    ('{"type": "message", "content": NaN}', protocol.BAD_JSON),
    # Valid JSON, but a float this large is inf, which would be echoed as `Infinity`.
    ('{"type": "message", "content": "hi", "x": 1e400}', protocol.BAD_JSON),
    ('{"type": "message", "content": "hi", "x": -1e309}', protocol.BAD_JSON),
    ("[" * 5000 + "]" * 5000, protocol.BAD_JSON),
    ('{"content": "no type"}', protocol.INVALID),
    ('{"type": "shout"}', protocol.UNKNOWN_TYPE),
    ('{"type": "message"}', protocol.INVALID),
    ('{"type": "message", "content": "   "}', protocol.INVALID),
    ('{"type": "message", "content": 42}', protocol.INVALID),
    (json.dumps({"type": "message", "content": "x" * (CONTENT_MAX + 1)}), protocol.INVALID),
    ('{"type": "message", "content": "nul \\u0000 byte"}', protocol.INVALID),
    ('{"type": "message", "content": "lone \\ud800"}', protocol.INVALID),
    ('{"type": "message", "content": "hi", "client_msg_id": 7}', protocol.INVALID),
    (json.dumps({"type": "message", "content": "hi", "client_msg_id": "x" * 65}), protocol.INVALID),
    ('{"type": "message", "content": "hi", "meta": {"nested": true}}', protocol.INVALID),
    ('{"type": "history", "before": 5, "after": 1}', protocol.INVALID),
    ('{"type": "history", "before": -1}', protocol.INVALID),
    ('{"type": "history", "after": "1"}', protocol.INVALID),
    ('{"type": "history", "limit": 101}', protocol.INVALID),
]


async def test_bad_frames_get_an_error_and_the_connection_stays_usable(redis_layer, alice):
    await sync_to_async(make_room)()
    socket, _ = await join("general", alice)
    for text, code in BAD_FRAMES:
        await socket.send_to(text_data=text)
        frame = await next_frame(socket)
        assert frame["type"] == "error" and frame["code"] == code, (text[:60], frame)
        assert frame["message"]
    await socket.send_to(bytes_data=b"\x00\x01")
    assert (await next_frame(socket))["code"] == protocol.BAD_JSON
    await socket.send_json_to({"type": "message", "content": "x" * CONTENT_MAX})
    assert len((await next_frame(socket, "broadcast"))["data"]["content"]) == CONTENT_MAX
    assert await sync_to_async(Message.objects.count)() == 1
    await socket.disconnect()


async def test_an_error_about_a_message_names_its_client_msg_id(redis_layer, alice):
    await sync_to_async(make_room)()
    socket, _ = await join("general", alice)
    await socket.send_json_to({"type": "message", "content": "", "client_msg_id": "c-9"})
    frame = await next_frame(socket, "error")
    assert (frame["code"], frame["client_msg_id"]) == (protocol.INVALID, "c-9")
    await socket.disconnect()


async def test_a_flood_is_rate_limited_then_closed_with_4008(redis_layer, alice):
    await sync_to_async(make_room)()
    socket, _ = await join("general", alice)
    for _ in range(200):
        await socket.send_json_to({"type": "join"})
    codes = []
    while True:
        output = await socket.receive_output(timeout=5)
        if output["type"] == "websocket.close":
            break
        codes.append(json.loads(output["text"]).get("code"))
    assert output["code"] == protocol.CLOSE_RATE_LIMITED
    assert codes.count(protocol.RATE_LIMITED) >= 1
    assert codes.index(protocol.RATE_LIMITED) >= 25  # a burst a person could make passes
    await socket.disconnect()


# ---------------------------------------------------------------- sessions and access


async def test_logout_closes_the_sockets_of_that_session_only(redis_layer, alice, bob):
    await sync_to_async(make_room)()
    laptop, phone = [await sync_to_async(session_cookie)(alice) for _ in range(2)]
    a, _ = await join("general", alice, cookie=laptop)
    other_device, _ = await join("general", alice, cookie=phone)
    b, _ = await join("general", bob)
    await sync_to_async(log_out)(laptop)
    assert await closed_with(a) == protocol.CLOSE_SIGNED_OUT
    for socket, user in ((other_device, "alice"), (b, "bob")):  # still connected
        await socket.send_json_to({"type": "join"})
        assert (await next_frame(socket, "ack"))["user"] == user
    await other_device.send_json_to({"type": "message", "content": "still here"})
    assert (await next_frame(other_device, "broadcast"))["data"]["content"] == "still here"
    for socket in (a, other_device, b):
        await socket.disconnect()


async def test_deactivation_closes_the_users_sockets(redis_layer, alice):
    await sync_to_async(make_room)()
    a, _ = await join("general", alice)
    alice.is_active = False
    await sync_to_async(alice.save)()
    assert await closed_with(a) == protocol.CLOSE_SIGNED_OUT
    await a.disconnect()


async def test_deactivation_by_update_closes_the_users_sockets_within_a_heartbeat(
    redis_layer, alice, monkeypatch
):
    monkeypatch.setattr(presence, "HEARTBEAT_SECONDS", 0.2)
    await sync_to_async(make_room)()
    a, _ = await join("general", alice)
    # QuerySet.update() sends no post_save: only the heartbeat's re-check notices.
    await sync_to_async(type(alice).objects.filter(pk=alice.pk).update)(is_active=False)
    assert await closed_with(a, timeout=3) == protocol.CLOSE_SIGNED_OUT
    await a.disconnect()


async def test_one_beat_keeps_the_processs_sockets_counted_across_rooms(
    redis_layer, alice, bob, monkeypatch
):
    monkeypatch.setattr(presence, "HEARTBEAT_SECONDS", 0.2)
    general = await sync_to_async(make_room)()
    other = await sync_to_async(make_room)("random")
    a, _ = await join("general", alice)
    b, _ = await join("random", bob)
    sockets = heartbeat.BEAT.members()
    assert [(s.room_id, s.username) for s in sockets] == [(general.pk, "alice"), (other.pk, "bob")]
    # Both entries about to expire: only a beat after this keeps them.
    store = async_client()
    caps = key("conns", connection_caps.CHAT, bob.pk)
    await store.zadd(caps, {sockets[1].conn_id: 1})
    await store.zadd(key("presence", general.pk), {f"alice|{sockets[0].conn_id}": 1})
    seconds, _ = await store.time()

    async def refreshed() -> bool:
        cap = await store.zscore(caps, sockets[1].conn_id)
        return cap > seconds * 1000 and await presence.online(room_id=general.pk) == ["alice"]

    await until(refreshed, timeout=5, what="a beat refreshing both sockets")
    await a.disconnect()
    await b.disconnect()
    assert heartbeat.BEAT.members() == []


async def test_a_socket_that_closes_during_a_beat_leaves_no_presence_or_slot(redis_layer, alice):
    room = await sync_to_async(make_room)()
    socket, _ = await join("general", alice)
    during = heartbeat.BEAT.members()  # the beat took its batch, then the socket closed
    await socket.disconnect()
    store = async_client()
    assert await store.zcard(key("presence", room.pk)) == 0
    await heartbeat._beat(during)  # its scripts run after the socket's releases
    assert await store.zcard(key("presence", room.pk)) == 0
    assert await store.zcard(key("conns", connection_caps.CHAT, alice.pk)) == 0


async def test_removal_from_a_private_room_closes_the_members_socket(redis_layer, alice):
    room = await sync_to_async(make_room)("secret", private=True, members=[alice])
    a, _ = await join("secret", alice)
    await sync_to_async(room.members.remove)(alice)
    assert await closed_with(a) == protocol.CLOSE_ACCESS_REVOKED
    await a.disconnect()


async def test_a_room_turned_private_closes_only_non_members(redis_layer, alice, bob):
    room = await sync_to_async(make_room)("general", members=[alice])
    a, _ = await join("general", alice)
    b, _ = await join("general", bob)
    room.is_private = True
    await sync_to_async(room.save)()
    assert await closed_with(b) == protocol.CLOSE_ACCESS_REVOKED
    await a.send_json_to({"type": "join"})
    assert (await next_frame(a, "ack"))["user"] == "alice"
    await a.disconnect()
    await b.disconnect()


# ---------------------------------------------------------------- presence


async def test_presence_diffs_follow_users_not_tabs(redis_layer, alice, bob, charlie):
    await sync_to_async(make_room)()
    watcher, welcome = await join("general", bob)
    assert welcome["online"] == ["bob"]
    await frames_until(watcher, lambda f: "bob" in f.get("joined", []))
    tab1, w1 = await join("general", alice)
    tab2, _ = await join("general", alice)
    assert w1["online"] == ["alice", "bob"]
    frames = await frames_until(watcher, lambda f: "alice" in f.get("joined", []))
    await tab1.disconnect()  # alice still has a tab open
    c, _ = await join("general", charlie)
    frames += await frames_until(watcher, lambda f: "charlie" in f.get("joined", []))
    presence = [f for f in frames if f["type"] == "presence"]
    assert all("alice" not in f["left"] for f in presence)
    await tab2.disconnect()
    left = await frames_until(watcher, lambda f: f["type"] == "presence" and f["left"])
    assert left[-1] == {"type": "presence", "joined": [], "left": ["alice"]}
    await c.disconnect()
    await watcher.disconnect()


async def test_welcome_online_and_the_diffs_after_it_add_up_to_who_is_there(
    redis_layer, bob, monkeypatch
):
    monkeypatch.setattr(presence, "COALESCE_MS", 300)  # one flush window to act in
    room = await sync_to_async(make_room)()
    # Someone joins and leaves between two flushes, while bob's welcome is built:
    await presence.enter(room_id=room.pk, username="ghost", conn_id="g")
    watcher, welcome = await join("general", bob)
    await presence.leave(room_id=room.pk, username="ghost", conn_id="g")
    online = set(welcome["online"])
    diffs = await frames_until(watcher, lambda f: f["type"] == "presence")
    online = (online | set(diffs[-1]["joined"])) - set(diffs[-1]["left"])
    assert online == {"bob"}
    await watcher.disconnect()


@pytest.mark.slow
async def test_a_crowd_joining_costs_few_presence_frames(
    redis_layer, alice, django_user_model, monkeypatch
):
    monkeypatch.setattr(presence, "FLUSH_INTERVAL_MS", 1000)  # the production interval
    await sync_to_async(make_room)()
    watcher, _ = await join("general", alice)
    crowd = [
        await sync_to_async(django_user_model.objects.create_user)(f"user{i}", password="x")
        for i in range(12)
    ]
    cookies = [await sync_to_async(session_cookie)(user) for user in crowd]
    loop = asyncio.get_running_loop()
    started = loop.time()
    sockets = await asyncio.gather(
        *(join("general", user, cookie=cookie) for user, cookie in zip(crowd, cookies, strict=True))
    )
    elapsed = loop.time() - started
    names = {f"user{i}" for i in range(12)}
    seen: set[str] = set()
    frames = 0
    while not names <= seen:
        frame = await next_frame(watcher, "presence")
        seen.update(frame["joined"])
        frames += 1
    # At most one diff per second however the joins spread out, and always fewer than joins.
    assert frames <= elapsed + 2 and frames < len(crowd), (frames, elapsed)
    for socket, _ in sockets:
        await socket.disconnect()
    await watcher.disconnect()


# ---------------------------------------------------------------- mentions


async def test_a_mention_notifies_only_users_who_can_read_the_room(
    redis_layer, alice, bob, charlie
):
    await sync_to_async(make_room)("secret", private=True, members=[alice, bob])
    socket, _ = await join("secret", alice)
    await socket.send_json_to(
        {"type": "message", "content": "@bob and @charlie, see this. mail a@bob.example @alice"}
    )
    message_id = (await next_frame(socket, "broadcast"))["data"]["id"]
    notes = await sync_to_async(list)(Notification.objects.select_related("recipient"))
    assert [(n.recipient.username, n.title) for n in notes] == [
        ("bob", "alice mentioned you in Secret")
    ]
    assert notes[0].url == f"/chat/secret/#m{message_id}"
    await socket.disconnect()
