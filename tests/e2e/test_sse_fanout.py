"""The fan-out hub over real daphne or uvicorn and Redis: many clients, and one that lags."""

import asyncio
import json
import socket
import time

import pytest
from asgiref.sync import sync_to_async
from django.db import transaction

from bench.sse_client import Client
from notifications.management.commands.serve import uvicorn_command
from notifications.models import Notification
from notifications.services import notifications_publish_bulk
from realtime import sse
from realtime.sse import MAX_BUFFERED_BYTES
from tests.support.factories import session_cookie
from tests.support.servers import UNCAPPED, Server
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

BODY = "x" * 4000


def _notify(user, first: int, count: int) -> list[int]:
    """Commit `count` big notifications for `user` (titles carry seq) and publish them."""
    with transaction.atomic():
        rows = Notification.objects.bulk_create(
            Notification(recipient=user, title=f"seq={first + i} t={time.time():.6f}", body=BODY)
            for i in range(count)
        )
        notifications_publish_bulk(notifications=rows)
    return [n.pk for n in rows]


class UvicornServer(Server):
    """Like tests.support.servers.Server, with uvicorn instead of daphne."""

    def command(self) -> list[str]:
        return uvicorn_command(host=self.host, port=self.port)


@pytest.fixture(scope="module")
def uvicorn_server(django_db_setup, django_db_blocker, redis_server, tmp_path_factory):
    with django_db_blocker.unblock():
        srv = UvicornServer(
            redis_url=redis_server.url,
            log_path=tmp_path_factory.mktemp("uv") / "uvicorn.log",
            env=UNCAPPED,  # 200 streams for alice
        ).start()
    yield srv
    srv.stop()


@pytest.fixture(params=["daphne", "uvicorn"])
def any_server(request):
    return request.getfixturevalue("server" if request.param == "daphne" else "uvicorn_server")


TCP_ESTABLISHED = 1


def _tcp_state(sock) -> int:
    """The kernel's TCP state of a socket (tcp_info.tcpi_state), without reading from it."""
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


@pytest.mark.slow
async def test_200_clients_each_get_all_50_events_in_order_exactly_once(any_server, alice):
    server = any_server
    cookie = await sync_to_async(session_cookie)(alice)
    client = Client()
    try:
        opened = await client.connect(
            port=server.port, path="/events/?channel=announcements", sessions=[cookie] * 200
        )
        assert opened["connected"] == 200, opened
        base = 10**15  # ids far above any real announcement: positions only move forward
        for seq in range(50):
            data = json.dumps({"seq": seq, "t": time.time()})
            await asyncio.to_thread(
                sse.publish_events, [("announcements", "announcement", data, base + seq)]
            )
        await until(lambda: client.totals.received >= 200 * 50, 30, "200 x 50 events")
        await asyncio.sleep(0.3)  # and nothing more arrives
        assert client.totals.received == 200 * 50
        assert (client.totals.gaps, client.totals.duplicates, client.totals.closed) == (0, 0, 0)
        assert all(c.received == 50 and c.last_seq == 49 for c in client.connections)
        assert {c.last_id for c in client.connections} == {f"announcements:{base + 49}"}
    finally:
        client.close()


async def test_a_client_that_stops_reading_is_cut_off_and_replays_exactly(any_server, alice):
    server = any_server
    cookie = await sync_to_async(session_cookie)(alice)
    client = Client()
    try:
        slow = await client.open(
            port=server.port, path="/events/", session=cookie, record=True, rcvbuf=4096
        )
        assert slow is not None
        slow.transport.pause_reading()
        # Past the bound plus what the kernel buffers on both ends (the server caps its own),
        # and under the 1,000 events a replay serves before it asks for a reset instead.
        sock = slow.transport.get_extra_info("socket")
        sent: list[int] = []
        while len(sent) < 975 and _tcp_state(sock) == TCP_ESTABLISHED:
            sent += await sync_to_async(_notify)(alice, len(sent), 25)
            await asyncio.sleep(0.02)
        assert _tcp_state(sock) != TCP_ESTABLISHED, "the slow client was never cut off"
        slow.transport.resume_reading()
        await asyncio.wait_for(slow.lost, timeout=20)
        got_first = list(slow.seqs)
        assert got_first == list(range(len(got_first)))
        assert len(got_first) < len(sent)
        # EventSource reconnects with the id of the last event it fully received.
        again = await client.open(
            port=server.port,
            path="/events/",
            session=cookie,
            record=True,
            last_event_id=slow.last_id,
        )
        assert again is not None
        rest = len(sent) - len(got_first)
        await until(lambda: again.received >= rest, 30, "the rest of the events")
        await asyncio.sleep(0.3)
        assert again.seqs == list(range(len(got_first), len(sent)))
    finally:
        client.close()


def test_the_bound_leaves_room_for_a_burst():
    # A burst of 200 four-KiB events stays below the bound for a client that keeps reading.
    assert MAX_BUFFERED_BYTES >= 200 * 1024
