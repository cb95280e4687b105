"""SIGTERM drains one server process (realtime/drain.py): it stops accepting at once, moves
its chat sockets (1012) and SSE streams (`stream-error` `server-restart`) off spread over
DRAIN_SECONDS, closes what is left, and exits 0 within the window."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect

from feeds.models import Room
from realtime.wire import restart_frame
from tests.support.chat_ws import chat, close_code, frame
from tests.support.factories import cookie_for
from tests.support.servers import RUN_DIR, UNCAPPED, Server
from tests.support.sse_client import SSEStream, open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WINDOW = 4.0
SOCKETS = STREAMS = 12
# The process exits this long after its window at most (the CI machine is slow and busy).
EXIT_MARGIN = 5.0


@pytest.fixture
def draining_server(request, django_db_blocker, redis_server) -> Iterator[Server]:
    window = getattr(request, "param", WINDOW)
    with django_db_blocker.unblock():
        srv = Server(
            redis_url=redis_server.url,
            log_path=RUN_DIR / "server-drain.log",
            env={**UNCAPPED, "DRAIN_SECONDS": str(int(window))},
        ).start()
    yield srv
    srv.stop()


def refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


async def restart_error(stream: SSEStream, timeout: float) -> tuple[float, dict, str | None]:
    """When the stream's `stream-error` came, its data and id; then the stream ends."""
    error = await stream.collect("stream-error", 1, timeout=timeout)
    at = time.monotonic()
    with pytest.raises(EOFError):
        await stream.next(5.0)
    return at, error[0].json(), error[0].id


async def closed_with(ws, timeout: float) -> tuple[float, int]:
    code = await close_code(ws, timeout)
    return time.monotonic(), code


def test_the_restart_frame_ends_a_stream_with_a_retry_and_no_id() -> None:
    assert restart_frame(1234) == (
        b"retry: 1234\nevent: stream-error\ndata: {"
        b'"condition": "server-restart", "text": "server restarting: reconnect", '
        b'"reason": "server-restart"}\n\n'
    )


async def test_sigterm_stops_accepting_at_once_and_moves_everyone_off_spread_over_the_window(
    draining_server, alice
):
    server = draining_server
    await sync_to_async(Room.objects.create)(slug="drain", title="Drain")
    cookie = await cookie_for(alice)
    sockets = [await chat(server, "drain", cookie) for _ in range(SOCKETS)]
    for ws in sockets:
        await frame(ws, "welcome")
    streams = [await open_stream(server.url, session=cookie) for _ in range(STREAMS)]
    # An ordinary Channels consumer (not one of Pulse's own sockets): closed at the end.
    plain = await connect(
        f"{server.ws_url}/ws/events/?channel=announcements",
        additional_headers={"Origin": server.url, "Cookie": f"sessionid={cookie}"},
        open_timeout=5,
    )
    try:
        sigterm = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        for _ in range(20):
            if refuses(server.port):
                break
            await asyncio.sleep(0.05)
        refused_after = time.monotonic() - sigterm
        assert refuses(server.port), "the port still accepts after SIGTERM"
        assert refused_after < 1.5, refused_after

        limit = WINDOW + EXIT_MARGIN
        moved = await asyncio.gather(
            *(closed_with(ws, limit) for ws in sockets),
            *(restart_error(s, limit) for s in streams),
            closed_with(plain, limit),
        )
        exited = await asyncio.to_thread(server.process.wait, limit)
        exit_after = time.monotonic() - sigterm
    finally:
        for ws in (*sockets, plain):
            await ws.close()
        for s in streams:
            await s.close()

    chat_moves, sse_moves, plain_move = (
        moved[:SOCKETS],
        moved[SOCKETS : SOCKETS + STREAMS],
        moved[-1],
    )
    assert {code for _, code in chat_moves} == {1012}
    assert plain_move[1] == 1012
    for _, data, event_id in sse_moves:
        assert data == {
            "condition": "server-restart",
            "text": "server restarting: reconnect",
            "reason": "server-restart",
        }
        assert event_id is None  # EventSource keeps its Last-Event-ID
    times = sorted(at - sigterm for at, *_ in (*chat_moves, *sse_moves))
    print(
        f"refused after {refused_after:.2f} s; moves from {times[0]:.2f} to {times[-1]:.2f} s; "
        f"exit after {exit_after:.2f} s"
    )
    # Spread over the window, not all at once: the first and the last a good part apart.
    assert times[-1] - times[0] >= WINDOW / 2, times
    assert exited == 0
    assert exit_after <= WINDOW + EXIT_MARGIN


@pytest.mark.parametrize("draining_server", [60], indirect=True)
async def test_a_second_sigterm_exits_at_once(draining_server, alice):
    server = draining_server
    cookie = await cookie_for(alice)
    streams = [await open_stream(server.url, session=cookie) for _ in range(STREAMS)]
    try:
        server.process.send_signal(signal.SIGTERM)
        for _ in range(20):
            if refuses(server.port):
                break
            await asyncio.sleep(0.05)
        sigterm = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        exited = await asyncio.to_thread(server.process.wait, EXIT_MARGIN)
        assert exited == 0
        assert time.monotonic() - sigterm < EXIT_MARGIN
    finally:
        for s in streams:
            await s.close()
