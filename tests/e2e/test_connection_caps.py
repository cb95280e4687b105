"""Per-user caps on SSE streams and chat sockets, counted in Redis across server processes."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import sync_to_async
from django.conf import settings
from websockets.asyncio.client import connect

from feeds.models import Room
from realtime import connection_caps
from realtime.redis_state import key
from tests.support.chat_ws import close_code, frame
from tests.support.factories import session_cookie
from tests.support.servers import RUN_DIR, Server
from tests.support.sse_client import open_stream
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

CAP = 3
CAPPED = {"SSE_STREAMS_PER_USER": str(CAP), "CHAT_SOCKETS_PER_USER": str(CAP)}


def _capped_server(name: str) -> Server:
    return Server(redis_url=settings.REDIS_URL, log_path=RUN_DIR / f"{name}.log", env=CAPPED)


@pytest.fixture(scope="module")
def capped(django_db_setup, django_db_blocker, redis_server) -> Iterator[tuple[Server, Server]]:
    """Two server processes with a cap of 3 per user."""
    with django_db_blocker.unblock():
        first, second = _capped_server("capped-1").start(), _capped_server("capped-2").start()
    yield first, second
    first.stop()
    second.stop()


@pytest.mark.slow
async def test_sse_streams_over_the_cap_get_a_json_429_on_any_process(capped, alice, bob):
    first, second = capped
    cookie = await sync_to_async(session_cookie)(alice)
    streams = [await open_stream(first.url, session=cookie) for _ in range(CAP - 1)]
    streams.append(await open_stream(second.url, session=cookie))
    try:
        for srv in capped:
            refused = await open_stream(srv.url, session=cookie)
            assert refused.response.status_code == 429
            await refused.response.aread()
            assert "at most 3 per user" in refused.response.json()["error"]
            await refused.close()
        # Another user is not affected.
        other = await open_stream(second.url, session=await sync_to_async(session_cookie)(bob))
        assert other.response.status_code == 200
        await other.close()

        # Closing a stream frees its slot, on the other process too.
        await streams.pop().close()

        async def reopened() -> bool:
            stream = await open_stream(first.url, session=cookie)
            if stream.response.status_code == 200:
                streams.append(stream)
                return True
            await stream.close()
            return False

        await until(reopened, 10, "a freed slot", every=0.1)
    finally:
        for stream in streams:
            await stream.close()


async def _chat(srv: Server, cookie: str):
    headers = {"Origin": srv.url, "Cookie": f"sessionid={cookie}"}
    return await connect(f"{srv.ws_url}/ws/chat/general/", additional_headers=headers)


async def test_chat_sockets_over_the_cap_get_an_error_frame_and_close_4029(capped, alice):
    first, second = capped
    await sync_to_async(Room.objects.create)(slug="general", title="General")
    cookie = await sync_to_async(session_cookie)(alice)
    sockets = [await _chat(first, cookie) for _ in range(CAP - 1)]
    sockets.append(await _chat(second, cookie))
    try:
        for ws in sockets:
            await frame(ws, "welcome")
        for srv in capped:
            refused = await _chat(srv, cookie)
            error = await frame(refused, "error")
            assert error["code"] == "too_many_connections"
            assert "3 chat connections" in error["message"]
            assert await close_code(refused) == 4029

        await sockets.pop().close()

        async def reopened() -> bool:
            ws = await _chat(first, cookie)
            data = await frame(ws)
            if data["type"] == "welcome":
                sockets.append(ws)
                return True
            await close_code(ws)
            return False

        await until(reopened, 10, "a freed slot", every=0.1)
    finally:
        for ws in sockets:
            await ws.close()


async def test_a_killed_process_frees_its_slots_when_they_expire(capped, alice):
    first, _ = capped
    doomed = _capped_server("capped-doomed")
    await sync_to_async(doomed.start)()
    cookie = await sync_to_async(session_cookie)(alice)
    streams = [await open_stream(doomed.url, session=cookie) for _ in range(CAP)]
    os.kill(doomed.process.pid, signal.SIGKILL)  # no disconnect runs, nothing is released
    await sync_to_async(doomed.stop)()
    for stream in streams:
        await stream.close()
    refused = await open_stream(first.url, session=cookie)
    assert refused.response.status_code == 429
    await refused.close()

    # TTL_MS later, as no live process refreshed them: the next connect prunes them.
    store = redis.Redis.from_url(settings.REDIS_URL)
    try:
        name = key("conns", connection_caps.SSE, alice.pk)
        aged = {
            m: s - connection_caps.TTL_MS for m, s in store.zrange(name, 0, -1, withscores=True)
        }
        assert len(aged) == CAP
        store.zadd(name, aged)
    finally:
        store.close()
    stream = await open_stream(first.url, session=cookie)
    assert stream.response.status_code == 200
    await stream.close()


async def test_live_connections_are_refreshed_in_one_call(alice, bob):
    name = key("conns", connection_caps.SSE, alice.pk)
    assert await connection_caps.acquire_async(kind="sse", user_id=alice.pk, conn_id="a1")
    store = redis.Redis.from_url(settings.REDIS_URL)
    try:
        store.zadd(name, {"a1": 1})  # about to expire
        await connection_caps.refresh(
            kind="sse", connections=[(alice.pk, "a1"), (alice.pk, "a2"), (bob.pk, "b1")]
        )
        seconds, _ = store.time()
        scores = dict(store.zrange(name, 0, -1, withscores=True))
        assert set(scores) == {b"a1", b"a2"}  # a2 was lost (a Redis restart): counted again
        assert all(s > seconds * 1000 + connection_caps.TTL_MS - 5000 for s in scores.values())
        assert store.zcard(key("conns", "sse", bob.pk)) == 1
    finally:
        store.close()
