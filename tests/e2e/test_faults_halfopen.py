"""Half-open TCP: a client whose packets vanish is dropped; an idle healthy one stays.

Real packet loss, not a client that merely stops reading: the server runs in its own
network namespace (tests/support/netns.py) and every packet from the vanished client's address is
silently discarded there, so the server's writes are never acknowledged again and no FIN
or RST ever arrives. The server runs ten times faster than production: TCP_USER_TIMEOUT
3 s with a keep-alive every 3 s (production 30 s and 20 s: gone within 50 s, realtime/tcp.py)
and WebSocket pings every 2 s, timing out after 3 (production 20 + 30 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect

from feeds.models import Room
from notifications.management.commands.serve import daphne_command, uvicorn_command
from notifications.services import notification_create
from tests.support.factories import make_user, session_cookie
from tests.support.figures import within
from tests.support.netns import NamespacedServer, NetLab
from tests.support.servers import RUN_DIR
from tests.support.sse_client import SSEStream

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

USER_TIMEOUT = 3
KEEPALIVE = 3  # min(20, USER_TIMEOUT): realtime/tcp.py
PING_INTERVAL, PING_TIMEOUT = 2, 3
# Unacknowledged data is always in flight within KEEPALIVE + 1 s (the hub's tick); 3 s for
# a busy machine (production: 20 + 1 + 30 s, inside a minute).
DROPPED_WITHIN = KEEPALIVE + 1 + USER_TIMEOUT + 3
IDLE_FOR = 5 * USER_TIMEOUT

cookie_for = sync_to_async(session_cookie)


def quick_command(kind: str, lab: NetLab) -> list[str]:
    """serve.py's command line for `kind`, listening in the lab, with quick pings."""
    if kind == "daphne":
        command = daphne_command(host=lab.server_ip, port=8000)
        quick = ["--ping-interval", str(PING_INTERVAL), "--ping-timeout", str(PING_TIMEOUT)]
    else:
        command = uvicorn_command(host=lab.server_ip, port=8000)
        quick = ["--ws-ping-interval", str(PING_INTERVAL), "--ws-ping-timeout", str(PING_TIMEOUT)]
    return command[:-1] + quick + command[-1:]  # later flags win; the application stays last


@pytest.fixture(params=["daphne", "uvicorn"])
def lab_server(request, django_db_setup, redis_server) -> Iterator[tuple[NetLab, Any]]:
    lab = NetLab()
    try:
        lab.create()
        server = NamespacedServer(
            lab,
            quick_command(request.param, lab),
            env={
                "REDIS_URL": redis_server.url,  # a unix socket: reachable from the namespace
                "ALLOWED_HOSTS": lab.server_ip,
                "TCP_USER_TIMEOUT": str(USER_TIMEOUT),
            },
            log=RUN_DIR / f"server-halfopen-{request.param}.log",
        )
        try:
            yield lab, server.start()
        finally:
            server.stop()
    finally:
        lab.delete()


async def open_stream_from(server: Any, address: str, cookie: str) -> SSEStream:
    """`GET /events/` from a given local address (open_stream otherwise)."""
    client = httpx.AsyncClient(
        base_url=server.url,
        cookies={"sessionid": cookie},
        timeout=httpx.Timeout(5, read=None),
        transport=httpx.AsyncHTTPTransport(local_address=address),
    )
    request = client.build_request("GET", "/events/", headers={"Accept": "text/event-stream"})
    stream = SSEStream(response=await client.send(request, stream=True), client=client)
    assert stream.response.status_code == 200
    stream.task = asyncio.get_running_loop().create_task(stream._pump())
    assert (await stream.next(5.0)).event == "stream-open"
    return stream


async def chat_from(server: Any, address: str, cookie: str) -> ClientConnection:
    """Join the lobby from a given local address; the client sends no pings of its own."""
    ws = await connect(
        f"{server.ws_url}/ws/chat/lobby/",
        additional_headers={"Origin": server.url, "Cookie": f"sessionid={cookie}"},
        open_timeout=5,
        ping_interval=None,
        local_addr=(address, 0),
    )
    assert (await frame(ws, "welcome", 5))["room"] == "lobby"
    return ws


async def frame(ws: ClientConnection, kind: str, timeout: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time())))
        if data["type"] == kind:
            return data


async def sse_streams(api: httpx.AsyncClient) -> int:
    response = await api.get("/api/health/")
    assert response.status_code == 200, response.text
    return response.json()["sse_streams"]


async def seconds_until_streams(api: httpx.AsyncClient, count: int, timeout: float) -> float:
    """How long until the server holds `count` SSE streams (polled every 0.1 s)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while (now := loop.time()) - started < timeout:
        if await sse_streams(api) == count:
            return now - started
        await asyncio.sleep(0.1)
    raise AssertionError(f"still {await sse_streams(api)} streams after {timeout} s")


async def seconds_until_left(watcher: ClientConnection, username: str, timeout: float) -> float:
    loop = asyncio.get_running_loop()
    started = loop.time()
    while username not in (await frame(watcher, "presence", timeout))["left"]:
        pass
    return loop.time() - started


async def test_a_vanished_peer_is_dropped_while_an_idle_healthy_one_stays(lab_server, alice, bob):
    lab, server = lab_server
    healthy_ip, vanishing_ip = lab.client_ips
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    staff = await sync_to_async(make_user)("staff", is_staff=True)
    loop = asyncio.get_running_loop()
    async with contextlib.AsyncExitStack() as cleanup:
        healthy = await open_stream_from(server, healthy_ip, await cookie_for(alice))
        cleanup.push_async_callback(healthy.close)
        opened = loop.time()
        doomed = await open_stream_from(server, vanishing_ip, await cookie_for(bob))
        cleanup.push_async_callback(doomed.close)
        watcher = await chat_from(server, healthy_ip, await cookie_for(alice))
        cleanup.callback(watcher.transport.abort)
        ghost = await chat_from(server, vanishing_ip, await cookie_for(bob))
        cleanup.callback(ghost.transport.abort)
        api = await cleanup.enter_async_context(
            httpx.AsyncClient(
                base_url=server.url,
                cookies={"sessionid": await cookie_for(staff)},
                transport=httpx.AsyncHTTPTransport(local_address=healthy_ip),
            )
        )
        assert await sse_streams(api) == 2

        lab.vanish(vanishing_ip)
        async with asyncio.TaskGroup() as both:
            sse = both.create_task(seconds_until_streams(api, 1, timeout=DROPPED_WITHIN + 10))
            ws = both.create_task(
                seconds_until_left(watcher, "bob", timeout=PING_INTERVAL + PING_TIMEOUT + 10)
            )
        # Not before the kernel gave up on unacknowledged data, and not much after.
        assert sse.result() >= USER_TIMEOUT - 0.5
        within("halfopen.sse_dropped_s", sse.result(), DROPPED_WITHIN)
        within("halfopen.ws_dropped_s", ws.result(), PING_INTERVAL + PING_TIMEOUT + 3)

        # The healthy stream idles through several timeouts, kept alive, never cut off.
        keepalives = 0
        while (left := opened + IDLE_FOR - loop.time()) > 0:
            try:
                event = await healthy.next(left, skip=())
            except TimeoutError:
                break
            assert event.event == "keep-alive", event
            keepalives += 1
        assert keepalives >= IDLE_FOR // (KEEPALIVE + 1)
        assert await sse_streams(api) == 1
        await sync_to_async(notification_create)(recipient=alice, title="still here")
        assert (await healthy.next(5)).json()["title"] == "still here"
        await watcher.send(json.dumps({"type": "message", "content": "still here"}))
        assert (await frame(watcher, "broadcast", 5))["data"]["content"] == "still here"
