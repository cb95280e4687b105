"""daphne's short send path for room frames (realtime.daphne_ws), seen from real clients.

The hub hands the same str to every member; the server builds its frame once and writes
it with one send(), several frames of a batch together. What each client reads must be
exactly what stock daphne would have sent: whole frames, right text, in order, whatever
happens to the other sockets of the room.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect

from feeds.models import Room
from notifications.management.commands.serve import daphne_command
from tests.support import servers
from tests.support.factories import make_users, session_cookie
from tests.support.room_asgi import FRAMES

pytestmark = [pytest.mark.e2e]

ALL = " ".join(str(i) for i in range(len(FRAMES)))


@pytest.fixture(scope="module")
def room_port(django_db_setup, django_db_blocker, redis_server, tmp_path_factory) -> Iterator[int]:
    """daphne through our launcher, serving tests/support/room_asgi.py on this port."""
    port = servers.free_port()
    command = daphne_command(host="127.0.0.1", port=port)
    command[-1] = "tests.support.room_asgi:application"
    with django_db_blocker.unblock():
        env = dict(os.environ, DATABASE_URL=servers.database_url(), REDIS_URL=redis_server.url)
    log_path = tmp_path_factory.mktemp("room") / "daphne.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen(command, cwd=servers.ROOT, env=env, stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, f"daphne exited: see {log_path}"
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "daphne did not start listening"
                time.sleep(0.05)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def room_url(room_port) -> str:
    return f"ws://127.0.0.1:{room_port}/room/"


@pytest.fixture
async def members(room_url) -> AsyncIterator[list[ClientConnection]]:
    sockets = [await connect(room_url, compression=None) for _ in range(40)]
    yield sockets
    await asyncio.gather(*(ws.close() for ws in sockets))


async def payloads(ws: ClientConnection, count: int) -> list[bytes]:
    """The next `count` text frames' payloads, as raw UTF-8 bytes off the wire."""
    return [await asyncio.wait_for(ws.recv(decode=False), 10) for _ in range(count)]


@pytest.mark.slow
async def test_every_member_reads_each_frame_whole_and_in_order(members):
    expected = [text.encode() for text in FRAMES]
    await members[0].send(f"fan {ALL}")  # one batch: a held run per socket
    await members[1].send("fan 1")  # one frame: written at once
    await members[2].send("fan 4 0")
    received = await asyncio.gather(*(payloads(ws, len(FRAMES) + 3) for ws in members))
    for got in received:
        assert got == [*expected, expected[1], expected[4], expected[0]]


async def test_a_member_that_stops_reading_gets_everything_once_it_reads_again(
    room_port, room_url, members
):
    raw = socket.socket()
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, ("127.0.0.1", room_port))
    # max_queue=1: the client library stops reading once one frame waits in it.
    stalled = await connect(room_url, sock=raw, max_queue=1, compression=None)
    try:
        for _ in range(3):  # ~200 KB: the kernel's buffers fill, the rest waits in daphne's
            await members[0].send(f"fan {ALL}")
        expected = [text.encode() for text in FRAMES] * 3
        for got in await asyncio.gather(*(payloads(ws, len(expected)) for ws in members)):
            assert got == expected
        assert await payloads(stalled, len(expected)) == expected
    finally:
        await stalled.close()


async def test_members_that_vanish_during_a_fan_out_do_not_affect_the_others(room_url, members):
    leaving, staying = members[:15], members[15:]
    for ws in leaving:  # reset: the server's next send() to them fails
        sock = ws.transport.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        ws.transport.abort()
    await staying[0].send(f"fan {ALL}")
    expected = [text.encode() for text in FRAMES]
    for got in await asyncio.gather(*(payloads(ws, len(expected)) for ws in staying)):
        assert got == expected
    late = await connect(room_url, compression=None)
    try:
        await late.send("fan 1 2")
        assert await payloads(late, 2) == expected[1:3]
    finally:
        await late.close()


# ---------------------------------------------------------------- the chat app itself


@pytest.mark.django_db(transaction=True)
async def test_a_chat_room_gets_byte_identical_broadcasts_of_non_ascii_text(server):
    await sync_to_async(Room.objects.create)(slug="babel", title="Babel")
    users = await sync_to_async(make_users)(30, "babel")
    cookies = [await sync_to_async(session_cookie)(user) for user in users]
    sockets = []
    for cookie in cookies:
        ws = await connect(
            f"{server.ws_url}/ws/chat/babel/",
            additional_headers={"Origin": server.url, "Cookie": f"sessionid={cookie}"},
        )
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["type"] == "welcome"
        sockets.append(ws)
    try:
        contents = ["héllo wörld ☃ 🎉 日本語", "ü" * 1500]
        for i, content in enumerate(contents):
            await sockets[0].send(
                json.dumps({"type": "message", "content": content, "client_msg_id": f"m{i}"})
            )

        async def broadcasts(ws: ClientConnection) -> list[bytes]:
            found: list[bytes] = []
            while len(found) < len(contents):
                raw = await asyncio.wait_for(ws.recv(decode=False), 10)
                if json.loads(raw)["type"] == "broadcast":
                    found.append(raw)
            return found

        received = await asyncio.gather(*(broadcasts(ws) for ws in sockets))
        assert [json.loads(raw)["data"]["content"] for raw in received[0]] == contents
        assert all(got == received[0] for got in received)
    finally:
        await asyncio.gather(*(ws.close() for ws in sockets))
