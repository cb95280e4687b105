"""Chat over real daphne processes, a real Redis and real WebSocket clients."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from feeds.models import Message, Room
from tests.support.chat_ws import chat, close_code, frame, joined, send
from tests.support.factories import cookie_for
from tests.support.sse_client import open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
async def general(alice) -> Room:
    return await sync_to_async(Room.objects.create)(slug="general", title="General")


async def test_a_message_sent_through_one_server_reaches_a_client_of_the_other(
    server, second_server, general, alice, bob
):
    a, _ = await joined(server, "general", alice)
    # welcome.online is what the room was last told (plus the newcomer): wait for it.
    await _presence_until(a, joined="alice")
    b, welcome = await joined(second_server, "general", bob)
    try:
        assert welcome["online"] == ["alice", "bob"]
        await send(a, type="message", content="hello from one", client_msg_id="m-1")
        got_b, got_a = await frame(b, "broadcast"), await frame(a, "broadcast")
        assert got_a["data"] == got_b["data"]
        stored = await sync_to_async(Message.objects.get)(pk=got_b["data"]["id"])
        assert (stored.content, got_b["data"]["user"], got_b["data"]["room"]) == (
            "hello from one",
            "alice",
            "general",
        )
        # A resend after a reconnect: acknowledged, not stored or broadcast again.
        await send(a, type="message", content="hello from one", client_msg_id="m-1")
        ack = await frame(a, "ack")
        assert (ack["duplicate"], ack["id"]) == (True, stored.pk)
        await send(b, type="message", content="reply from two")
        assert (await frame(b, "broadcast"))["data"]["content"] == "reply from two"
        assert (await frame(a, "broadcast"))["data"]["content"] == "reply from two"
        assert await sync_to_async(Message.objects.count)() == 2
    finally:
        await a.close()
        await b.close()


async def test_an_edit_and_a_delete_on_one_server_reach_a_tab_of_the_other(
    server, second_server, general, alice, bob
):
    a, _ = await joined(server, "general", alice)
    b, _ = await joined(second_server, "general", bob)
    try:
        await send(a, type="message", content="helo", client_msg_id="e-1")
        mid = (await frame(b, "broadcast"))["data"]["id"]
        await send(a, type="edit", id=mid, content="hello")
        edited = await frame(b, "message_edited")
        assert (edited["data"]["id"], edited["data"]["content"]) == (mid, "hello")
        assert edited["data"]["edited_at"]
        await send(b, type="delete", id=mid)  # not his message: refused, nothing changes
        assert (await frame(b, "error"))["code"] == "forbidden"
        await send(a, type="delete", id=mid)
        assert await frame(b, "message_deleted") == {"type": "message_deleted", "id": mid}
        # A tab that opens now gets the tombstone in its welcome.
        c, welcome = await joined(second_server, "general", bob)
        await c.close()
        assert welcome["history"][-1]["deleted"] is True
        assert welcome["history"][-1]["content"] == ""
    finally:
        await a.close()
        await b.close()


async def test_edits_and_deletes_reach_the_rooms_sse_channel_without_moving_its_position(
    server, second_server, general, alice, bob
):
    channel = f"chat-{general.pk}"
    stream = await open_stream(
        second_server.url, session=await cookie_for(bob), params={"channel": channel}
    )
    ws, _ = await joined(server, "general", alice)
    try:
        await send(ws, type="message", content="helo")
        mid = (await frame(ws, "broadcast"))["data"]["id"]
        await send(ws, type="edit", id=mid, content="hello")
        await send(ws, type="delete", id=mid)
        got = [await stream.next(10) for _ in range(3)]
        assert [e.event for e in got] == ["message", "message_edited", "message_deleted"]
        assert got[1].json()["content"] == "hello" and got[2].json() == {"id": mid}
        assert got[1].id == got[2].id == got[0].id == f"{channel}:{mid}"
    finally:
        await ws.close()
        await stream.close()


async def test_refused_handshakes_get_http_403(server, general, alice, charlie):
    await sync_to_async(Room.objects.create)(slug="secret", title="Secret", is_private=True)
    alice_cookie = await cookie_for(alice)
    attempts = [
        ("general", None, None),  # anonymous
        ("general", alice_cookie, "https://evil.example"),  # foreign Origin
        ("general", alice_cookie, f"http://{server.host}:1"),  # same host, another port
        ("general", alice_cookie, f"https://{server.host}:{server.port}"),  # another scheme
        ("nowhere", alice_cookie, None),  # unknown room
        ("secret", await cookie_for(charlie), None),  # private, not a member
    ]
    for slug, cookie, origin in attempts:
        with pytest.raises(InvalidStatus) as refused:
            await chat(server, slug, cookie, origin=origin)
        assert refused.value.response.status_code == 403, (slug, origin)


@pytest.mark.slow
async def test_presence_follows_people_across_servers_and_tabs(
    server, second_server, general, alice, bob, charlie
):
    watcher, _ = await joined(server, "general", bob)
    tab1, _ = await joined(server, "general", alice)
    tab2, _ = await joined(second_server, "general", alice)
    try:
        seen = [await _presence_until(watcher, joined="alice")]
        await tab1.close()  # alice still has a tab on the other server
        c, welcome = await joined(second_server, "general", charlie)
        assert welcome["online"] == ["alice", "bob", "charlie"]
        seen.append(await _presence_until(watcher, joined="charlie"))
        assert not any("alice" in f["left"] for batch in seen for f in batch)
        await tab2.close()
        left = await _presence_until(watcher, left="alice")
        assert left[-1] == {"type": "presence", "joined": [], "left": ["alice"]}
        await c.close()
    finally:
        await watcher.close()


async def _presence_until(ws, *, joined: str = "", left: str = "") -> list[dict]:
    frames = []
    while True:
        f = await frame(ws, "presence")
        frames.append(f)
        if joined in f["joined"] or left in f["left"]:
            return frames


async def test_logging_out_closes_the_users_sockets_on_every_server(
    server, second_server, general, alice, bob
):
    cookie = await cookie_for(alice)
    sockets = [await chat(srv, "general", cookie) for srv in (server, second_server)]
    bobs, _ = await joined(second_server, "general", bob)
    for ws in sockets:
        await frame(ws, "welcome")
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as http:
        assert (await http.get("/chat/")).status_code == 200
        loop = asyncio.get_running_loop()
        started = loop.time()
        response = await http.post("/logout/", headers={"X-CSRFToken": http.cookies["csrftoken"]})
        assert response.status_code == 302
    codes = await asyncio.gather(*(close_code(ws, timeout=2) for ws in sockets))
    assert codes == [4001, 4001]
    assert loop.time() - started < 2
    with pytest.raises(InvalidStatus):
        await chat(server, "general", cookie)  # the session is gone
    await send(bobs, type="join")
    assert (await frame(bobs, "ack"))["user"] == "bob"
    await bobs.close()


async def test_deactivating_a_user_closes_their_sockets(server, general, alice):
    ws, _ = await joined(server, "general", alice)
    alice.is_active = False
    await sync_to_async(alice.save)()
    assert await close_code(ws, timeout=2) == 4001


async def test_a_frame_over_64_kib_never_reaches_the_room(server, general, alice, bob):
    ws, _ = await joined(server, "general", alice)
    watcher, _ = await joined(server, "general", bob)
    await ws.send(json.dumps({"type": "message", "content": "x" * 70_000}))
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(5):
            while True:
                await ws.recv()
    await send(watcher, type="message", content="after the big one")
    assert (await frame(watcher, "broadcast"))["data"]["content"] == "after the big one"
    assert await sync_to_async(Message.objects.count)() == 1
    await watcher.close()


async def test_a_frame_over_64_kib_closes_the_socket_with_1009(server, general, alice):
    ws, _ = await joined(server, "general", alice)
    await ws.send(json.dumps({"type": "message", "content": "x" * 70_000}))
    assert await close_code(ws) == 1009


async def test_bad_input_gets_error_frames_and_the_socket_stays_usable(server, general, alice):
    ws, _ = await joined(server, "general", alice)
    try:
        for text, code in [
            ("{oops", "bad_json"),
            ('{"type": "dance"}', "unknown_type"),
            ('{"type": "message", "content": ""}', "invalid"),
            (json.dumps({"type": "message", "content": "y" * 2001}), "invalid"),
            ('{"type": "history", "before": "soon"}', "invalid"),
        ]:
            await ws.send(text)
            error = await frame(ws)
            assert (error["type"], error["code"]) == ("error", code)
        await ws.send(b"\x00binary")
        assert (await frame(ws))["code"] == "bad_json"
        await send(ws, type="message", content="still here")
        assert (await frame(ws, "broadcast"))["data"]["content"] == "still here"
    finally:
        await ws.close()


async def test_a_flood_is_rate_limited_then_closed_with_4008(server, general, alice):
    ws, _ = await joined(server, "general", alice)
    for i in range(300):
        await send(ws, type="typing" if i % 2 else "join")
    codes = []
    try:
        async with asyncio.timeout(10):
            while True:
                codes.append(json.loads(await ws.recv()).get("code"))
    except ConnectionClosed as exc:
        assert exc.rcvd is not None and exc.rcvd.code == 4008
    assert "rate_limited" in codes


async def test_a_mention_reaches_the_user_over_their_notification_stream(
    server, second_server, general, alice, bob
):
    stream = await open_stream(server.url, session=await cookie_for(bob))
    ws, _ = await joined(second_server, "general", alice)
    try:
        await send(ws, type="message", content="@bob can you review?")
        message = await frame(ws, "broadcast")
        (event,) = await stream.collect("notification", 1, timeout=10)
        data = event.json()
        assert data["title"] == "alice mentioned you in General"
        assert data["body"] == "@bob can you review?"
        assert data["url"] == f"/chat/general/#m{message['data']['id']}"
    finally:
        await ws.close()
        await stream.close()


@pytest.mark.parametrize("path", ["/ws/nothing/", "/ws/chat/x%2F/", "/ws/chat/general/extra/", "/"])
async def test_an_unrouted_websocket_path_is_refused_without_a_traceback(
    server, general, alice, path
):
    cookie = await cookie_for(alice)
    logged_before = server.log_path.stat().st_size
    with pytest.raises(InvalidStatus) as refused:
        await connect(
            f"{server.ws_url}{path}",
            additional_headers={"Origin": server.url, "Cookie": f"sessionid={cookie}"},
            open_timeout=5,
        )
    assert refused.value.response.status_code == 403
    # The server still serves, and logged no error for the refused path.
    ws, _ = await joined(server, "general", alice)
    await ws.close()
    written = server.log_path.read_bytes()[logged_before:].decode(errors="replace")
    assert "Traceback" not in written
    assert "ERROR" not in written
