"""/metrics, /healthz and /readyz on real server processes sharing one metrics directory."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import connect

from feeds.models import Room
from notifications.services import notification_create
from tests.support.chat_ws import frame, joined, send
from tests.support.factories import cookie_for
from tests.support.figures import within
from tests.support.servers import RUN_DIR, UNCAPPED, Server
from tests.support.sse_client import open_stream
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

TOKEN = "scrape-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "pulse-dashboard.json"


@pytest.fixture(scope="module")
def metrics_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rt-metrics-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def metered_server(metrics_dir: Path, redis_url: str, name: str) -> Server:
    env = {**UNCAPPED, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "METRICS_TOKEN": TOKEN}
    return Server(redis_url=redis_url, log_path=RUN_DIR / f"{name}.log", env=env)


@pytest.fixture(scope="module")
def pair(django_db_setup, django_db_blocker, redis_server, metrics_dir) -> Iterator[list[Server]]:
    """Two server processes of one host: one metrics directory."""
    with django_db_blocker.unblock():
        servers = [
            metered_server(metrics_dir, redis_server.url, f"metrics-{i}").start() for i in (1, 2)
        ]
    yield servers
    for srv in servers:
        srv.stop()


async def scrape(server: Server, **headers: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(f"{server.url}/metrics", headers=headers or BEARER)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=")
    return response.text


def value(text: str, name: str, **labels: str) -> float:
    """The sample `name` with exactly these labels; 0 when absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def open_count(text: str, transport: str) -> float:
    return value(text, "pulse_connections_open", transport=transport)


async def test_one_scrape_sums_the_connections_and_deliveries_of_both_processes(pair, alice):
    one, two = pair
    room = await sync_to_async(Room.objects.create)(slug="metered", title="Metered")
    cookie = await cookie_for(alice)
    before = await scrape(one)
    streams = [await open_stream(srv.url, session=cookie) for srv in pair]
    sockets = [(await joined(srv, room.slug, alice))[0] for srv in pair]
    headers = {"Origin": one.url, "Cookie": f"sessionid={cookie}"}
    events = await connect(
        f"{one.ws_url}/ws/events/?channel=announcements", additional_headers=headers
    )
    try:

        async def all_open() -> bool:
            text = await scrape(one)
            return [open_count(text, t) for t in ("sse", "ws_chat", "ws_events")] == [2, 2, 1]

        await until(all_open, 20, "every connection counted")
        assert open_count(await scrape(two), "sse") == 2  # either process answers for both

        await sync_to_async(notification_create)(recipient=alice, title="counted")
        for stream in streams:
            await stream.collect("notification", 1, timeout=10)
        await send(sockets[0], type="message", content="hello")
        for ws in sockets:
            await frame(ws, "broadcast")

        async def delivered() -> bool:
            text = await scrape(one)

            def grew(name: str, transport: str) -> float:
                return value(text, name, transport=transport) - value(
                    before, name, transport=transport
                )

            done = (
                grew("pulse_events_delivered_total", "sse") >= 2
                and grew("pulse_events_delivered_total", "ws_chat") >= 2
                # One latency observation per message and process (not per receiver).
                and grew("pulse_delivery_latency_seconds_count", "sse") >= 2
                and grew("pulse_delivery_latency_seconds_count", "ws_chat") >= 2
            )
            return done

        await until(delivered, 20, "deliveries counted on both processes")
        text = await scrape(one)
        replays = "pulse_sse_replays_total"
        assert value(text, replays) - value(before, replays) >= 2  # each stream's start
    finally:
        await events.close()
        for ws in sockets:
            await ws.close()
        for stream in streams:
            await stream.close()

    async def all_closed() -> bool:
        text = await scrape(one)
        return all(open_count(text, t) == 0 for t in ("sse", "ws_chat", "ws_events"))

    await until(all_closed, 20, "every connection counted out")


async def get(server: Server, path: str, *, session: str = "", **headers: str) -> httpx.Response:
    cookies = {"sessionid": session} if session else None
    async with httpx.AsyncClient(base_url=server.url, cookies=cookies, timeout=10) as client:
        return await client.get(path, headers=headers)


async def test_metrics_answer_the_token_and_staff_and_refuse_everyone_else(pair, alice, bob):
    one = pair[0]
    await sync_to_async(type(alice).objects.filter(pk=alice.pk).update)(is_staff=True)
    staff, member = await cookie_for(alice), await cookie_for(bob)
    assert (await get(one, "/metrics", **BEARER)).status_code == 200
    staff_scrape = await get(one, "/metrics", session=staff)
    assert staff_scrape.status_code == 200
    assert "pulse_connections_open" in staff_scrape.text

    anonymous = await get(one, "/metrics")
    assert anonymous.status_code == 403
    assert anonymous.json() == {"error": "staff session or metrics token required"}
    not_staff = await get(one, "/metrics", session=member)
    assert not_staff.status_code == 403
    assert "error" in not_staff.json()

    for wrong in (f"Bearer {TOKEN}x", "Bearer", f"bearer {TOKEN[:-1]}"):
        refused = await get(one, "/metrics", Authorization=wrong)
        assert refused.status_code == 401
        assert refused.json() == {"error": "invalid metrics token"}
        assert refused.headers["www-authenticate"].startswith("Bearer")
    # A token never stands in for a session, nor a session for a wrong token.
    assert (await get(one, "/metrics", session=staff, Authorization="Bearer x")).status_code == 401

    async with httpx.AsyncClient(base_url=one.url, timeout=10) as client:
        for path, headers in (("/metrics", BEARER), ("/metrics", {}), ("/healthz", {})):
            posted = await client.post(path, headers=headers)
            assert posted.status_code == 405, path
            assert posted.json() == {"error": "method POST not allowed"}
            assert "GET" in posted.headers["allow"]


@pytest.mark.slow  # a server of its own
async def test_metrics_are_staff_only_without_a_token_setting(
    django_db_blocker, redis_server, metrics_dir, alice
):
    with django_db_blocker.unblock():
        srv = metered_server(metrics_dir, redis_server.url, "metrics-notoken")
        srv.env.pop("METRICS_TOKEN")
        srv.start()
    try:
        assert (await get(srv, "/metrics", Authorization="Bearer")).status_code == 401
        assert (await get(srv, "/metrics", **BEARER)).status_code == 401
        assert (await get(srv, "/metrics")).status_code == 403
    finally:
        srv.stop()


async def test_health_and_readiness_follow_redis(pair, alice, redis_server):
    one = pair[0]
    stream = await open_stream(one.url, session=await cookie_for(alice))  # a live hub
    before = await scrape(one)
    try:
        async with httpx.AsyncClient(base_url=one.url, timeout=10) as client:
            health = await client.get("/healthz")
            assert (health.status_code, health.json()) == (200, {"status": "ok"})

            async def ready() -> bool:
                answer = await client.get("/readyz")
                return (answer.status_code, answer.json()) == (200, {"status": "ok"})

            # A Redis check unanswered within READY_TIMEOUT (1 s) counts as down: on a
            # starved CPU (seen at load 10 beside the other worker) one probe can miss it.
            await until(ready, 30, "/readyz 200 while Redis is up", every=0.25)
            head = await client.head("/readyz")
            assert (head.status_code, head.content) == (200, b"")

            await asyncio.to_thread(redis_server.stop)
            try:
                down = await client.get("/readyz")
                assert down.status_code == 503
                assert down.json() == {"status": "unavailable", "failed": ["redis"]}
                assert (await client.get("/healthz")).status_code == 200  # alive all the same
            finally:
                await asyncio.to_thread(redis_server.start)
            restarted = asyncio.get_running_loop().time()
            await until(ready, 60, "/readyz 200 again", every=0.25)
            back = asyncio.get_running_loop().time() - restarted
            within("metrics.ready_after_redis_s", back, 30)

        async def resynced() -> bool:
            text = await scrape(one)
            grew = [
                value(text, name, **labels) > value(before, name, **labels)
                for name, labels in (
                    ("pulse_relay_reconnects_total", {}),
                    ("pulse_resyncs_total", {"transport": "sse"}),
                )
            ]
            return all(grew)

        await until(resynced, 30, "the hub's reconnect and the stream's resync", every=0.25)
    finally:
        await stream.close()


@pytest.mark.slow
async def test_a_killed_process_leaves_the_open_connections(
    django_db_blocker, redis_server, metrics_dir, pair, alice
):
    with django_db_blocker.unblock():
        doomed = metered_server(metrics_dir, redis_server.url, "metrics-killed").start()
    stream = await open_stream(doomed.url, session=await cookie_for(alice))
    try:

        async def counted() -> bool:
            return open_count(await scrape(pair[0]), "sse") == 1

        await until(counted, 20, "the doomed process's stream counted")
        doomed.process.send_signal(signal.SIGKILL)
        doomed.process.wait(timeout=10)

        async def gone() -> bool:
            return open_count(await scrape(pair[0]), "sse") == 0

        await until(gone, 20, "the killed process's stream no longer counted")
    finally:
        await stream.close()
        doomed.stop()


# -- the Grafana dashboard ------------------------------------------------------------------

METRIC = re.compile(r"\bpulse_[a-z_]+")


def test_the_dashboard_is_grafana_json_with_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["title"] and dashboard["panels"]
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 8
    assert all(METRIC.search(expr) for expr in exprs)


async def test_every_dashboard_query_names_a_metric_the_servers_export(pair):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    exported = {
        sample.name
        for family in text_string_to_metric_families(await scrape(pair[0]))
        for sample in family.samples
    }
    missing = {name for expr in exprs for name in METRIC.findall(expr)} - exported
    assert not missing, f"the dashboard queries metrics /metrics does not have: {missing}"
