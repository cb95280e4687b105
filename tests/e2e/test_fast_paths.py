"""The fast paths are taken wherever the app is served the documented ways, not only
under `manage.py serve`: plain `daphne config.asgi:application` and uvicorn with
`--ws websockets-sansio`. GET /api/health/ counts the adapter each connection got; a
server without one (uvicorn's legacy `websockets` implementation) says so, once."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async

from feeds.models import Room
from notifications.management.commands.serve import uvicorn_command
from tests.support.chat_ws import frame, joined, send
from tests.support.factories import make_user, session_cookie
from tests.support.servers import Server
from tests.support.sse_client import open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MEMBERS = 3


class PlainDaphne(Server):
    """daphne's own command line, as the Channels docs start it: no launcher, no options."""

    def command(self) -> list[str]:
        daphne = Path(sys.executable).with_name("daphne")
        return [str(daphne), "-b", self.host, "-p", str(self.port), "config.asgi:application"]


class SansioUvicorn(Server):
    """uvicorn as `manage.py serve --server uvicorn` starts it."""

    def command(self) -> list[str]:
        return uvicorn_command(host=self.host, port=self.port)


class LegacyUvicorn(Server):
    """uvicorn with its legacy `websockets` implementation: no WebSocket fast path."""

    def command(self) -> list[str]:
        command = uvicorn_command(host=self.host, port=self.port)
        command[command.index("websockets-sansio")] = "websockets"
        return command


SERVERS = {"daphne": PlainDaphne, "uvicorn": SansioUvicorn}


def start(server_class: type[Server], redis_server, tmp_path_factory) -> Server:
    """A fresh process, so that its counters are the test's alone."""
    log_path = tmp_path_factory.mktemp(server_class.__name__) / "server.log"
    return server_class(redis_url=redis_server.url, log_path=log_path).start()


@pytest.fixture(scope="module", params=sorted(SERVERS))
def served(
    request, django_db_setup, django_db_blocker, redis_server, tmp_path_factory
) -> Iterator[tuple[str, Server]]:
    with django_db_blocker.unblock():
        srv = start(SERVERS[request.param], redis_server, tmp_path_factory)
    yield request.param, srv
    srv.stop()


@pytest.fixture(scope="module")
def legacy_uvicorn(
    django_db_setup, django_db_blocker, redis_server, tmp_path_factory
) -> Iterator[Server]:
    with django_db_blocker.unblock():
        srv = start(LegacyUvicorn, redis_server, tmp_path_factory)
    yield srv
    srv.stop()


async def fast_paths(server: Server, cookie: str) -> dict[str, int]:
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as api:
        response = await api.get("/api/health/")
    assert response.status_code == 200, response.text
    return response.json()["fast_paths"]


async def counted(server: Server, cookie: str, name: str, at_least: int) -> dict[str, int]:
    """The counters once `name` reached `at_least` (an SSE stream is handed to its adapter
    just after its first bytes went out), or as they are after 10 s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while (counts := await fast_paths(server, cookie)).get(name, 0) < at_least:
        if loop.time() > deadline:
            break
        await asyncio.sleep(0.05)
    return counts


async def chat_and_stream(server: Server, *, sse_counter: str) -> dict[str, int]:
    """Members chat in one room while a staff user streams; then the server's counters."""
    await sync_to_async(Room.objects.create)(slug="fast", title="Fast")
    ops = await sync_to_async(make_user)("ops", is_staff=True)
    users = [ops] + [await sync_to_async(make_user)(f"fast{i}") for i in range(MEMBERS - 1)]
    sockets = [(await joined(server, "fast", user))[0] for user in users]
    ops_cookie = await sync_to_async(session_cookie)(ops)
    stream = await open_stream(server.url, session=ops_cookie)
    try:
        await send(sockets[0], type="message", content="fast everywhere")
        for ws in sockets:
            assert (await frame(ws, "broadcast"))["data"]["content"] == "fast everywhere"
        return await counted(server, ops_cookie, sse_counter, 1)
    finally:
        await stream.close()
        await asyncio.gather(*(ws.close() for ws in sockets))


async def test_chat_and_sse_take_the_fast_path(served) -> None:
    kind, server = served
    counts = await chat_and_stream(server, sse_counter=f"sse-{kind}")
    adapters = {name: n for name, n in counts.items() if not name.endswith("-frames")}
    assert adapters == {f"ws-{kind}": MEMBERS, f"sse-{kind}": 1}, counts
    if kind == "daphne":
        # Welcomes, presence and the broadcast: all prepared frames, none left to daphne.
        assert counts.get("ws-daphne-prepared-frames", 0) >= 2 * MEMBERS, counts
        assert "ws-daphne-stock-frames" not in counts, counts
    assert "No fast path" not in server.log_path.read_text()


async def test_a_server_without_a_fast_path_still_works_and_says_so_once(legacy_uvicorn):
    counts = await chat_and_stream(legacy_uvicorn, sse_counter="sse-uvicorn")
    assert counts == {"ws-none": MEMBERS, "sse-uvicorn": 1}
    log = legacy_uvicorn.log_path.read_text()
    assert log.count("No fast path for this ASGI server (a chat WebSocket") == 1, log
