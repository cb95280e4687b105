"""Room fan-out over real daphne processes and Redis: order, slow clients, Redis restarts."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from feeds import protocol, services
from feeds.models import Message, Room
from tests.support.factories import make_user, session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

cookie_for = sync_to_async(session_cookie)


async def open_socket(server, slug: str, user, **options: Any) -> ClientConnection:
    cookie = await cookie_for(user)
    return await connect(
        f"{server.ws_url}/ws/chat/{slug}/",
        additional_headers={"Origin": server.url, "Cookie": f"sessionid={cookie}"},
        open_timeout=10,
        **options,
    )


async def next_frame(ws: ClientConnection, kind: str, *, deadline: float) -> dict[str, Any]:
    """The next frame of `kind` before the loop's clock reaches `deadline`."""
    loop = asyncio.get_running_loop()
    while True:
        raw = await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time()))
        data = json.loads(raw)
        if data["type"] == kind:
            return data


async def joined(server, slug: str, user, **options: Any) -> tuple[ClientConnection, dict]:
    ws = await open_socket(server, slug, user, **options)
    deadline = asyncio.get_running_loop().time() + 10
    return ws, await next_frame(ws, "welcome", deadline=deadline)


async def broadcast_ids(ws: ClientConnection, count: int, *, timeout: float) -> list[int]:
    deadline = asyncio.get_running_loop().time() + timeout
    return [
        (await next_frame(ws, "broadcast", deadline=deadline))["data"]["id"] for _ in range(count)
    ]


async def backfill(ws: ClientConnection, welcome: dict, last_seen: int) -> list[int]:
    """What chat.js does on a new welcome: its history, then `history after` the last id
    seen while the welcome's history starts later, until has_more is false."""
    ids = [m["id"] for m in welcome["history"] if m["id"] > last_seen]
    after = last_seen
    deadline = asyncio.get_running_loop().time() + 30
    if welcome["history"] and welcome["history"][0]["id"] > last_seen:
        ids = []
        while True:
            await ws.send(json.dumps({"type": "history", "after": after}))
            page = await next_frame(ws, "history", deadline=deadline)
            ids += [m["id"] for m in page["messages"]]
            if not page["has_more"]:
                break
            after = page["messages"][-1]["id"]
    return ids


async def read_until_close(ws: ClientConnection, *, timeout: float) -> tuple[list[int], int]:
    """Every broadcast id until the server closes the socket, and its close code."""
    ids: list[int] = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                data = json.loads(await ws.recv())
                if data["type"] == "broadcast":
                    ids.append(data["data"]["id"])
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "dropped without a close frame"
        return ids, exc.rcvd.code
    raise AssertionError("unreachable")


async def close_code(ws: ClientConnection, *, timeout: float) -> int:
    _, code = await read_until_close(ws, timeout=timeout)
    return code


def post_many(room: Room, author, contents: list[str]) -> list[int]:
    """Post messages as another process would (the admin, a command): each commits and
    is published on its own."""
    return [
        services.message_post(room=room, author=author, content=content)[0]["id"]
        for content in contents
    ]


# ---------------------------------------------------------------- order across processes


CLIENTS, MESSAGES = 100, 30


@pytest.mark.slow
async def test_a_room_across_two_servers_gets_every_message_once_in_one_order(
    server, second_server, alice, bob, charlie
):
    await sync_to_async(Room.objects.create)(slug="crowd", title="Crowd")
    others = [await sync_to_async(make_user)(f"member{i}") for i in range(CLIENTS - 3)]
    users = [alice, bob, charlie, *others]
    gate = asyncio.Semaphore(20)

    async def join_one(i: int, user) -> ClientConnection:
        async with gate:
            ws, _ = await joined(server if i % 2 else second_server, "crowd", user)
            return ws

    sockets = await asyncio.gather(*(join_one(i, u) for i, u in enumerate(users)))

    async def talk(i: int, ws: ClientConnection) -> list[tuple[int, int, int]]:
        # Message k goes once this socket has seen everyone's k-1: the room's pace stays
        # one the test's own clients can read, so no socket is ever too slow.
        seen: list[tuple[int, int, int]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 150
        for k in range(MESSAGES):
            await ws.send(json.dumps({"type": "message", "content": f"{i}:{k}", "k": k, "i": i}))
            while len(seen) < CLIENTS * (k + 1):
                data = (await next_frame(ws, "broadcast", deadline=deadline))["data"]
                seen.append((data["id"], data["i"], data["k"]))
        return seen

    try:
        received = await asyncio.gather(*(talk(i, ws) for i, ws in enumerate(sockets)))
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
    stored = await sync_to_async(list)(Message.objects.order_by("id").values_list("id", flat=True))
    assert len(stored) == CLIENTS * MESSAGES
    first = [message_id for message_id, _, _ in received[0]]
    for seen in received:
        ids = [message_id for message_id, _, _ in seen]
        assert ids == first  # one order for everyone, on both servers
        assert sorted(ids) == stored  # every stored message, once
        for i in range(CLIENTS):
            assert [k for _, sender, k in seen if sender == i] == list(range(MESSAGES))


# ---------------------------------------------------------------- a client that stops reading

# About 1 MB per socket: past what the socket's buffers and its outbox may hold
# (realtime.outbox), yet a backfill within the history rate limit.
BURST, CONTENT = 1000, 1000


async def test_a_client_that_stops_reading_is_closed_with_4009_then_backfills(
    server, alice, bob, charlie
):
    room = await sync_to_async(Room.objects.create)(slug="busy", title="Busy")
    readers = [(await joined(server, "busy", user))[0] for user in (bob, charlie)]
    # A tiny receive buffer, and the library stops reading after one frame: the server's
    # buffers fill as soon as the test stops calling recv().
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", server.port))
    stalled, _ = await joined(
        server, "busy", alice, sock=raw, max_queue=1, ping_interval=None, compression=None
    )
    reading = [asyncio.create_task(broadcast_ids(ws, BURST, timeout=90)) for ws in readers]
    contents = [f"{n:05d} " + "x" * CONTENT for n in range(BURST)]
    posted = await sync_to_async(post_many)(room, bob, contents)

    # The room is not held up by the stalled socket.
    assert await asyncio.gather(*reading) == [posted, posted]

    seen, code = await read_until_close(stalled, timeout=30)
    assert code == protocol.CLOSE_TOO_SLOW
    assert seen == posted[: len(seen)] and len(seen) < BURST

    resumed, welcome = await joined(server, "busy", alice)
    assert seen + await backfill(resumed, welcome, seen[-1] if seen else 0) == posted
    for ws in (*readers, resumed):
        await ws.close()


# ---------------------------------------------------------------- Redis restarts


async def test_a_redis_restart_closes_sockets_with_4012_and_nothing_stored_is_lost(
    server, second_server, redis_server, alice, bob
):
    room = await sync_to_async(Room.objects.create)(slug="general", title="General")
    a, _ = await joined(server, "general", alice)
    b, _ = await joined(second_server, "general", bob)
    await a.send(json.dumps({"type": "message", "content": "before"}))
    seen_a = await broadcast_ids(a, 1, timeout=10)
    seen_b = await broadcast_ids(b, 1, timeout=10)

    redis_server.stop()
    # A message stored while Redis is away (from another process: its publish fails).
    during = await sync_to_async(post_many)(room, alice, ["while Redis was away"])
    redis_server.start()

    # Each server subscribes again, then tells its sockets to reconnect and backfill.
    assert await close_code(a, timeout=30) == protocol.CLOSE_RESYNC
    assert await close_code(b, timeout=30) == protocol.CLOSE_RESYNC
    a, welcome_a = await joined(server, "general", alice)
    b, welcome_b = await joined(second_server, "general", bob)
    seen_a += await backfill(a, welcome_a, seen_a[-1])
    seen_b += await backfill(b, welcome_b, seen_b[-1])
    await b.send(json.dumps({"type": "message", "content": "after"}))
    seen_a += await broadcast_ids(a, 1, timeout=10)
    seen_b += await broadcast_ids(b, 1, timeout=10)

    stored = await sync_to_async(list)(Message.objects.order_by("id").values_list("id", flat=True))
    assert during[0] in stored and len(stored) == 3
    assert seen_a == seen_b == stored
    await a.close()
    await b.close()
