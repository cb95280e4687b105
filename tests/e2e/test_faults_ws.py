"""WebSocket clients that vanish or stall: the server notices and presence follows."""

import asyncio
import base64
import json
import os

import pytest
from asgiref.sync import sync_to_async

from feeds.models import Room
from tests.support.chat_ws import frame, joined
from tests.support.factories import session_cookie
from tests.support.figures import within
from tests.support.servers import RUN_DIR, Server

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

# Production pings every 20 s and drops a peer silent for 30 more (serve.py): a vanished
# client is gone within 50 s. This server runs the same mechanism ten times faster.
PING_INTERVAL, PING_TIMEOUT = 2, 3


@pytest.fixture(scope="module")
def quick_ping_server(django_db_setup, django_db_blocker, redis_server):
    with django_db_blocker.unblock():
        srv = Server(
            redis_url=redis_server.url,
            log_path=RUN_DIR / "server-quick-ping.log",
            extra_args=("--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT)),
        ).start()
    yield srv
    srv.stop()


@pytest.fixture
async def lobby(db):
    return await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")


async def silent_client(server: Server, cookie: str) -> asyncio.StreamWriter:
    """Handshake, read the welcome, then never read again: no pong ever comes back."""
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        (
            f"GET /ws/chat/lobby/ HTTP/1.1\r\nHost: 127.0.0.1:{server.port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\nOrigin: {server.url}\r\n"
            f"Cookie: sessionid={cookie}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"welcome" not in head:
        chunk = await asyncio.wait_for(reader.read(65536), 5)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101")
    return writer


async def test_a_client_that_stops_answering_is_dropped_from_the_room_and_presence(
    quick_ping_server, lobby, alice, bob
):
    watcher, welcome = await joined(quick_ping_server, "lobby", bob)
    try:
        assert welcome["online"] == ["bob"]
        ghost = await silent_client(quick_ping_server, await sync_to_async(session_cookie)(alice))
        loop = asyncio.get_running_loop()
        started = loop.time()
        seen_join = seen_leave = False
        while not seen_leave:
            diff = await frame(watcher, "presence", timeout=PING_INTERVAL + PING_TIMEOUT + 10)
            seen_join |= "alice" in diff["joined"]
            seen_leave |= "alice" in diff["left"]
        assert seen_join
        within("ping_timeout.dropped_s", loop.time() - started, PING_INTERVAL + PING_TIMEOUT + 5)
        ghost.transport.abort()
    finally:
        await watcher.close()


async def test_idle_but_healthy_connections_stay_up_across_many_pings(
    quick_ping_server, lobby, alice, bob
):
    ws, _ = await joined(quick_ping_server, "lobby", alice)
    try:
        # Five ping cycles with no traffic: the client library answers pings, so it stays.
        await asyncio.sleep(5 * PING_INTERVAL)
        await ws.send(json.dumps({"type": "join"}))
        assert (await frame(ws, "ack"))["user"] == "alice"
    finally:
        await ws.close()
