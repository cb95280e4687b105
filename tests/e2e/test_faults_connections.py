"""Connections that come and go in bulk leave nothing behind on the server."""

import asyncio

import httpx
import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings

from feeds.live import room_group
from feeds.models import Room
from realtime.redis_state import key
from tests.support.factories import session_cookie
from tests.support.figures import within

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

RSS_GROWTH_MAX = 1.10  # a server's RSS after 1,000 more aborted connections, over its warm RSS


async def open_and_abort(
    port: int, request: bytes, *, status: bytes, ready: bytes, count: int, parallel: int = 50
) -> int:
    """Send `request` on `count` raw sockets, read until `ready` arrives after a `status`
    answer, then reset each: no close frame, no FIN, as when a browser tab is killed."""
    opened = 0
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        nonlocal opened
        async with gate:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            head = b""
            while ready not in head:
                chunk = await asyncio.wait_for(reader.read(65536), 10)
                assert chunk, head
                head += chunk
            assert head.startswith(b"HTTP/1.1 " + status)
            opened += 1
            writer.transport.abort()

    await asyncio.gather(*(one() for _ in range(count)))
    return opened


async def open_and_abort_sse(port: int, cookie: str, count: int) -> int:
    """Open `count` SSE streams, wait for stream-open, then reset each."""
    request = (
        f"GET /events/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: text/event-stream\r\n"
        f"Cookie: sessionid={cookie}\r\n\r\n"
    ).encode()
    return await open_and_abort(port, request, status=b"200", ready=b"stream-open", count=count)


async def open_and_abort_chat(port: int, cookie: str, slug: str, count: int) -> int:
    """Open `count` chat sockets, wait for the welcome, then reset each."""
    request = (
        f"GET /ws/chat/{slug}/ HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nCookie: sessionid={cookie}\r\n\r\n"
    ).encode()
    return await open_and_abort(port, request, status=b"101", ready=b'"welcome"', count=count)


async def gauges(client: httpx.AsyncClient) -> dict:
    response = await client.get("/api/health/")
    assert response.status_code == 200, response.text
    return response.json()


async def settled(client: httpx.AsyncClient, key: str, at_most: int, timeout: float) -> dict:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        state = await gauges(client)
        if state[key] <= at_most or loop.time() > deadline:
            return state
        await asyncio.sleep(0.5)


async def test_a_thousand_aborted_sse_streams_leave_no_listeners_or_memory_behind(server, alice):
    alice.is_staff = True
    await sync_to_async(alice.save)()
    cookie = await sync_to_async(session_cookie)(alice)
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as client:
        baseline = await gauges(client)
        # warm-up: allocator pools and caches grow once; the check is that they stop growing
        assert await open_and_abort_sse(server.port, cookie, 200) == 200
        warm = await settled(client, "sse_streams", baseline["sse_streams"], timeout=60)
        assert warm["sse_streams"] <= baseline["sse_streams"]

        assert await open_and_abort_sse(server.port, cookie, 1000) == 1000
        after = await settled(client, "sse_streams", baseline["sse_streams"], timeout=60)
        mib = (warm["rss_bytes"] >> 20, after["rss_bytes"] >> 20)
        print(f"sse_streams {baseline['sse_streams']} -> {after['sse_streams']}, rss {mib} MiB")
        assert after["sse_streams"] <= baseline["sse_streams"], after
        within("aborted_sse.rss_growth", after["rss_bytes"] / warm["rss_bytes"], RSS_GROWTH_MAX)


async def test_a_thousand_aborted_chat_sockets_leave_no_subscription_presence_or_memory(
    server, alice
):
    alice.is_staff = True
    await sync_to_async(alice.save)()
    room = await sync_to_async(Room.objects.create)(slug="churn", title="Churn")
    cookie = await sync_to_async(session_cookie)(alice)
    store = redis.Redis.from_url(settings.REDIS_URL)
    try:
        async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as client:
            baseline = await gauges(client)
            # Warm-up: 3,000. Each aborted socket leaves reference cycles (daphne, autobahn and
            # Twisted objects, the consumer) that only the cyclic GC frees, and the allocator
            # keeps the high-water mark of that backlog. Python 3.13's first GC generation
            # waits for 2,000 net allocations where 3.11's waits for 700, so its backlog and
            # high-water mark are larger and slower to reach. MiB after each round of 1,000:
            # 3.11 88 | 107 108 111 111 111 111 112 113; 3.13 89 | 106 125 129 129 131 131 131
            # 131; 3.13 with gc.set_threshold(700) 89 | 107 114 114 114 114 115 115 115.
            for _ in range(3):
                assert await open_and_abort_chat(server.port, cookie, room.slug, 1000) == 1000
                warm = await settled(client, "chat_sockets", baseline["chat_sockets"], timeout=60)
                assert warm["chat_sockets"] <= baseline["chat_sockets"]

            # Then 2,000 more: a leak of 7 KB a socket (14 MiB) crosses the 10 % limit (a
            # planted one measured 1.16 on 3.13).
            for _ in range(2):
                assert await open_and_abort_chat(server.port, cookie, room.slug, 1000) == 1000
                after = await settled(client, "chat_sockets", baseline["chat_sockets"], timeout=60)
            after = await settled(client, "chat_channels", baseline["chat_channels"], timeout=10)
        mib = (warm["rss_bytes"] >> 20, after["rss_bytes"] >> 20)
        print(f"chat_sockets {baseline['chat_sockets']} -> {after['chat_sockets']}, rss {mib} MiB")
        assert after["chat_sockets"] <= baseline["chat_sockets"], after
        assert after["chat_channels"] <= baseline["chat_channels"], after
        within("aborted_chat.rss_growth", after["rss_bytes"] / warm["rss_bytes"], RSS_GROWTH_MAX)
        # Redis: nobody subscribed to the room any more, nobody present in it.
        [(_, subscribers)] = store.pubsub_numsub(f"asgi__group__{room_group(room.pk)}")
        assert subscribers == 0
        assert store.zcard(key("presence", room.pk)) == 0
    finally:
        store.close()


async def test_health_is_for_staff_only(server, bob):
    cookie = await sync_to_async(session_cookie)(bob)
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as client:
        response = await client.get("/api/health/")
    assert response.status_code == 403
    assert response.json() == {"error": "staff only"}
