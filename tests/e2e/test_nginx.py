"""Three server processes behind Debian's nginx running the shipped site (deploy/nginx/).

Clients connect only through nginx, as browsers would in production; the test looks at
the processes directly (their /api/health/) only to see where nginx placed each client.
Everything that must cross processes is checked with members spread over all three; then
one process is SIGKILLed mid-run and its clients must come back through nginx on the
others with nothing stored lost or doubled.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import ssl
from collections import Counter
from datetime import timedelta

import httpx
import pytest
from asgiref.sync import sync_to_async
from axes.models import AccessAttempt
from django.utils import timezone
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from feeds.models import Message, Room
from notifications.services import announcement_create, notification_create
from tests.support.chat_tab import ChatTab
from tests.support.chat_ws import chat, close_code, frame, joined, send
from tests.support.factories import PASSWORD, cookie_for, make_sessions, make_user, make_users
from tests.support.figures import within
from tests.support.nginx import Nginx, self_signed_certificate
from tests.support.servers import RUN_DIR, UNCAPPED, Server, run_manage
from tests.support.sse_client import open_stream
from tests.support.sse_tab import SSETab
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCESSES = 3


@pytest.fixture(scope="module")
def processes(django_db_setup, django_db_blocker, redis_server):
    """Three server processes as the systemd units run them (serve --proxy-headers)."""
    with django_db_blocker.unblock():
        servers = [
            Server(
                redis_url=redis_server.url,
                log_path=RUN_DIR / f"server-nginx-{i}.log",
                extra_args=("--proxy-headers",),
                env=UNCAPPED,
            )
            for i in range(PROCESSES)
        ]
        try:
            for server in servers:
                server.start()
            yield servers
        finally:
            for server in servers:
                server.stop()


@pytest.fixture(scope="module")
def nginx(processes):
    proxy = Nginx([f"{s.host}:{s.port}" for s in processes], directory=RUN_DIR / "nginx")
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
async def staff_cookie(db) -> str:
    return await cookie_for(await sync_to_async(make_user)("ops", is_staff=True))


@pytest.fixture
async def general(alice) -> Room:
    return await sync_to_async(Room.objects.create)(slug="general", title="General")


async def placement(processes: list[Server], cookie: str, gauge: str) -> list[int]:
    """How many chat sockets or SSE streams each process holds (asked directly)."""
    counts = []
    async with httpx.AsyncClient(cookies={"sessionid": cookie}, timeout=10) as http:
        for server in processes:
            response = await http.get(f"{server.url}/api/health/")
            counts.append(response.json()[gauge] if response.status_code == 200 else 0)
    return counts


async def until_placed(processes, cookie, gauge: str, expected: list[int]) -> None:
    """Wait until the processes hold `expected` of `gauge`, in some order."""

    async def placed() -> bool:
        return sorted(await placement(processes, cookie, gauge)) == expected

    await until(placed, 10, f"{gauge} per process to be {expected} in some order", every=0.1)


async def online_seen(ws, names: set[str], timeout: float = 10.0) -> None:
    """Read presence diffs until every one of `names` has joined."""
    seen: set[str] = set()
    while not names <= seen:
        seen |= set((await frame(ws, "presence", timeout=timeout))["joined"])


async def test_a_room_with_members_on_three_processes_chats_sees_presence_and_typing(
    processes, nginx, staff_cookie, general, alice, bob, charlie
):
    sockets = []
    try:
        for user in (alice, bob, charlie):
            sockets.append((await joined(nginx, "general", user))[0])
        # nginx's least_conn placed each member on another process.
        await until_placed(processes, staff_cookie, "chat_sockets", [1, 1, 1])
        a, b, c = sockets
        await online_seen(a, {"bob", "charlie"})

        await send(b, type="typing")
        for ws in (a, c):
            assert await frame(ws, "typing") == {"type": "typing", "user": "bob"}

        await send(c, type="message", content="hello @alice", client_msg_id="c-1")
        got = [(await frame(ws, "broadcast"))["data"] for ws in sockets]
        assert got[0] == got[1] == got[2]
        assert (got[0]["user"], got[0]["content"]) == ("charlie", "hello @alice")
        assert await Message.objects.filter(room=general).acount() == 1

        await b.close()
        left = await frame(a, "presence")
        assert left["left"] == ["bob"]
    finally:
        for ws in sockets:
            await ws.close()


async def test_notifications_announcements_and_the_feed_reach_streams_on_every_process(
    processes, nginx, redis_server, staff_cookie, alice, bob, charlie
):
    users = (alice, bob, charlie)
    streams = [await open_stream(nginx.url, session=await cookie_for(u)) for u in users]
    feeds = [
        await open_stream(nginx.url, session=await cookie_for(u), params={"channel": "activity"})
        for u in users
    ]
    try:
        await until_placed(processes, staff_cookie, "sse_streams", [2, 2, 2])

        # A bulk send from its own process (a fourth one) reaches every stream.
        result = await asyncio.to_thread(
            run_manage, "send_notifications", "--title", "Deployed", "--users",
            "alice,bob,charlie", redis_url=redis_server.url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        for stream in streams:
            (event,) = await stream.collect("notification", 1, timeout=10)
            assert event.json()["title"] == "Deployed"

        # The worker of deploy/systemd/pulse-announcements.service, run once.
        due = await sync_to_async(announcement_create)(
            title="Maintenance", publish_at=timezone.now() - timedelta(seconds=1)
        )
        result = await asyncio.to_thread(
            run_manage, "publish_due_announcements", redis_url=redis_server.url
        )
        assert result.returncode == 0, result.stderr
        for stream in streams:
            (event,) = await stream.collect("announcement", 1, timeout=10)
            assert event.json()["id"] == due.pk

        # A room created with a form POST through nginx: the CSRF check passes only if
        # nginx hands Django the browser's Host with its port (proxy_set_header Host).
        cookie = await cookie_for(alice)
        async with httpx.AsyncClient(base_url=nginx.url, cookies={"sessionid": cookie}) as http:
            page = await http.get("/chat/")
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
            created = await http.post(
                "/chat/",
                data={"title": "Launch party", "csrfmiddlewaretoken": token},
                headers={"Origin": nginx.url, "Referer": f"{nginx.url}/chat/"},
            )
            assert created.status_code == 302, created.text
            listed = (await http.get("/api/feed/")).json()["results"]
        # The feed had both: the announcement (published by the worker) and the room.
        assert [item["target"] for item in listed[:2]] == ["Launch party", "Maintenance"]
        for feed in feeds:
            items = [e.json() for e in await feed.collect("activity", 2, timeout=10)]
            assert [(i["verb"], i["target"]) for i in items] == [
                ("announced", "Maintenance"),
                (listed[0]["verb"], "Launch party"),
            ]
    finally:
        for stream in (*streams, *feeds):
            await stream.close()


async def test_logging_out_through_nginx_ends_the_sessions_connections_on_other_processes(
    processes, nginx, staff_cookie, general, alice, bob
):
    cookie = await cookie_for(alice)
    socket = await chat(nginx, "general", cookie)
    await frame(socket, "welcome")
    stream = await open_stream(nginx.url, session=cookie)
    bobs, _ = await joined(nginx, "general", bob)
    try:
        # alice's socket, alice's stream and bob's socket: one on each process.
        await until_placed(processes, staff_cookie, "chat_sockets", [0, 1, 1])
        await until_placed(processes, staff_cookie, "sse_streams", [0, 0, 1])
        chats = await placement(processes, staff_cookie, "chat_sockets")
        streams = await placement(processes, staff_cookie, "sse_streams")
        assert sorted(map(sum, zip(chats, streams, strict=True))) == [1, 1, 1]
        async with httpx.AsyncClient(base_url=nginx.url, cookies={"sessionid": cookie}) as http:
            assert (await http.get("/chat/")).status_code == 200
            response = await http.post(
                "/logout/",
                headers={"X-CSRFToken": http.cookies["csrftoken"], "Origin": nginx.url},
            )
            assert response.status_code == 302
        assert await close_code(socket) == 4001
        ended = await stream.collect("stream-error", 1, timeout=5)
        assert ended[0].json()["reason"] == "session-ended"
        await send(bobs, type="join")
        assert (await frame(bobs, "ack"))["user"] == "bob"  # bob stays
    finally:
        await stream.close()
        await socket.close()
        await bobs.close()


async def test_only_an_allowed_scraper_reads_metrics_through_nginx(processes, nginx, staff_cookie):
    cookies = {"sessionid": staff_cookie}
    scraper = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        httpx.AsyncClient(base_url=nginx.url, cookies=cookies) as other,
        httpx.AsyncClient(base_url=nginx.url, cookies=cookies, transport=scraper) as allowed,
    ):
        assert (await allowed.get("/metrics")).status_code == 403  # nobody, by default
        nginx.metrics_allow = ["127.0.0.2"]
        try:
            await asyncio.to_thread(nginx.reload)
            metrics = await allowed.get("/metrics")
            assert metrics.status_code == 200 and "pulse_connections_open" in metrics.text
            assert (await other.get("/metrics")).status_code == 403
        finally:
            nginx.metrics_allow = []
            await asyncio.to_thread(nginx.reload)


async def test_the_site_caps_bodies_passes_probes_denies_metrics_and_serves_static_files(
    processes, nginx
):
    async with httpx.AsyncClient(base_url=nginx.url, timeout=30) as http:
        # Over 3 MB: nginx refuses it. Just over Django's 2.5 MB: the app answers, in JSON.
        too_big = await http.post("/api/notifications/read-all/", content=b"x" * 3_200_000)
        assert too_big.status_code == 413
        app_sized = await http.post("/api/notifications/read-all/", content=b"x" * 2_700_000)
        assert app_sized.status_code in (400, 403) and "error" in app_sized.json()
        assert (await http.get("/metrics")).status_code == 403
        for probe in ("/healthz", "/readyz"):  # for a load balancer in front of nginx
            assert (await http.get(probe)).json() == {"status": "ok"}
        css = await http.get("/static/notifications/app.css")
        assert css.status_code == 200 and css.headers["content-type"] == "text/css"
        assert "expires" in css.headers  # served by nginx, not by a process


async def test_the_server_sees_the_address_nginx_saw_not_one_the_client_claims(
    processes, nginx, alice
):
    # From 127.0.0.2: nginx reaches the processes from 127.0.0.1, so only X-Forwarded-For
    # (trusted with serve --proxy-headers) can tell them 127.0.0.2.
    transport = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with httpx.AsyncClient(base_url=nginx.url, transport=transport) as http:
        await http.get("/login/")
        response = await http.post(
            "/login/",
            data={
                "username": "alice",
                "password": "wrong-password",
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
            headers={"Origin": nginx.url, "X-Forwarded-For": "203.0.113.9"},
        )
        assert response.status_code == 200  # the form again, with an error
    attempt = await AccessAttempt.objects.aget(username="alice")
    # What login throttling counts per address is the real client's.
    assert attempt.ip_address == "127.0.0.2"


async def test_a_reload_takes_a_process_out_of_rotation_and_back(
    processes, nginx, staff_cookie, alice
):
    cookie = await cookie_for(alice)
    await until_placed(processes, staff_cookie, "sse_streams", [0, 0, 0])  # earlier tests' gone
    streams = []
    try:
        await asyncio.to_thread(nginx.reload, [f"{s.host}:{s.port}" for s in processes[1:]])
        streams = [await open_stream(nginx.url, session=cookie) for _ in range(4)]
        assert (await placement(processes, staff_cookie, "sse_streams"))[0] == 0
    finally:
        for stream in streams:
            await stream.close()
        await asyncio.to_thread(nginx.reload, [f"{s.host}:{s.port}" for s in processes])
    streams = [await open_stream(nginx.url, session=cookie) for _ in range(3)]
    try:
        await until_placed(processes, staff_cookie, "sse_streams", [1, 1, 1])
    finally:
        for stream in streams:
            await stream.close()


@pytest.fixture(scope="module")
def tls_site(django_db_setup, django_db_blocker, redis_server):
    """One process with production's SECURE_SSL behind the site rendered with TLS."""
    directory = RUN_DIR / "nginx-tls"
    cert, key = self_signed_certificate(directory)
    with django_db_blocker.unblock():
        server = Server(
            redis_url=redis_server.url,
            log_path=RUN_DIR / "server-nginx-tls.log",
            extra_args=("--proxy-headers",),
            env={"SECURE_SSL": "1"},
        ).start()
    proxy = Nginx([f"{server.host}:{server.port}"], directory=directory, tls=(cert, key))
    try:
        proxy.start()
        yield proxy, ssl.create_default_context(cafile=cert)
    finally:
        proxy.stop()
        server.stop()


async def test_behind_tls_the_app_sees_https_for_logins_pages_streams_and_chat_sockets(
    tls_site, general, alice
):
    proxy, tls = tls_site
    async with httpx.AsyncClient(verify=tls) as plain:
        redirect = await plain.get(f"{proxy.http_url}/login/")
        assert redirect.status_code == 301
        assert redirect.headers["location"] == f"https://{proxy.host}/login/"
    async with httpx.AsyncClient(base_url=proxy.url, verify=tls, timeout=10) as http:
        await http.get("/login/")
        # Django's HTTPS CSRF check (Referer and Origin against https://<Host with port>)
        # passes only with X-Forwarded-Proto and the port-carrying Host from nginx.
        login = await http.post(
            "/login/",
            data={
                "username": "alice",
                "password": PASSWORD,
                "csrfmiddlewaretoken": http.cookies["csrftoken"],
            },
            headers={"Origin": proxy.url, "Referer": f"{proxy.url}/login/"},
        )
        assert login.status_code == 302, login.text
        assert "max-age" in login.headers["strict-transport-security"]
        session = http.cookies["sessionid"]
        page = await http.get("/notifications/")  # no redirect loop: Django saw https
        assert page.status_code == 200
        async with asyncio.timeout(10), http.stream("GET", "/events/") as stream:
            assert stream.status_code == 200
            async for line in stream.aiter_lines():
                if line == "event: stream-open":
                    break
    room = f"{proxy.ws_url}/ws/chat/general/"
    headers = {"Cookie": f"sessionid={session}", "Origin": proxy.url}
    async with connect(room, ssl=tls, additional_headers=headers) as ws:
        assert (await frame(ws, "welcome"))["user"] == "alice"
    # The same page served over plain http would be another origin.
    headers["Origin"] = proxy.url.replace("https://", "http://")
    with pytest.raises(InvalidStatus) as refused:
        await connect(room, ssl=tls, additional_headers=headers)
    assert refused.value.response.status_code == 403


USERS = 6  # each with a chat tab and an SSE tab
MESSAGES_PER_TAB = 8
NOTIFICATIONS = 24
KILL_AFTER = 0.35  # of the writes
SEND_EVERY = 0.25  # seconds between one tab's messages
BACK_WITHIN = 60.0  # generous: reconnect backoff, SSE retry (1-10 s), a busy CI machine


async def test_a_process_killed_mid_run_its_clients_come_back_through_nginx_with_nothing_lost(
    processes, nginx, staff_cookie
):
    users = await sync_to_async(make_users)(USERS, "killed")
    sessions = await sync_to_async(make_sessions)(users)
    room = await sync_to_async(Room.objects.create)(slug="kill", title="Kill")
    loop = asyncio.get_running_loop()
    stop_at = loop.time() + 150  # every client loop ends by then
    rng = random.Random(USERS)
    chat_tabs = [
        ChatTab(port=nginx.port, slug="kill", session=s, username=u.username, rng=rng)
        for u, s in zip(users, sessions, strict=True)
    ]
    sse_tabs = [SSETab(port=nginx.port, session=s) for s in sessions]
    tasks = [loop.create_task(tab.run(until=stop_at)) for tab in (*chat_tabs, *sse_tabs)]
    victim = None
    try:
        for tab in chat_tabs:
            await asyncio.wait_for(tab.welcomed.wait(), 30)
        for tab in sse_tabs:
            await asyncio.wait_for(tab.opened.wait(), 30)
        chats = await placement(processes, staff_cookie, "chat_sockets")
        streams = await placement(processes, staff_cookie, "sse_streams")
        # The victim: a process holding both kinds of client.
        v = max(range(PROCESSES), key=lambda i: (min(chats[i], streams[i]), chats[i]))
        assert min(chats[v], streams[v]) >= 1, (chats, streams)
        victim = processes[v]

        notified, killed_at = await write_while_killing(chat_tabs, users, victim)
        with contextlib.suppress(AssertionError):  # what is missing is asserted below
            await until(lambda: whole(chat_tabs, sse_tabs, notified, room), BACK_WITHIN, every=0.25)
        back_after = loop.time() - killed_at
        print(
            f"killed a process holding {chats[v]} of {USERS} chat tabs and {streams[v]} of "
            f"{USERS} SSE tabs; all whole {back_after:.1f} s after the kill"
        )
        await asyncio.sleep(1.0)  # anything doubled arrives by now
    finally:
        for tab in (*chat_tabs, *sse_tabs):
            tab.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        if victim is not None and victim.process.poll() is not None:
            await asyncio.to_thread(victim.start)  # for any test after this one

    # The killed process's clients reconnected (through nginx, to the others).
    assert sum(len(t.connections) > 1 for t in chat_tabs) == chats[v], chats
    assert sum(len(t.streams) > 1 for t in sse_tabs) == streams[v], streams

    # Nothing stored lost or doubled: every message once, every tab has them all.
    stored = [m async for m in Message.objects.filter(room=room).values("id", "client_msg_id")]
    sent = [cmid for tab in chat_tabs for cmid in tab.sent]
    assert Counter(m["client_msg_id"] for m in stored) == Counter(sent)
    assert not any(tab.refused or tab.pending for tab in chat_tabs)
    for tab in chat_tabs:
        assert tab.shown == {m["id"] for m in stored}, tab.me
    for user, tab in zip(users, sse_tabs, strict=True):
        got = [n["id"] for n in tab.notifications()]
        assert got == notified[user.pk], (user.username, got)
    within("nginx_kill.whole_after_kill_s", back_after, BACK_WITHIN)


async def write_while_killing(
    chat_tabs, users, victim: Server
) -> tuple[dict[int, list[int]], float]:
    """Messages from every tab and notifications for every user, SIGKILLing `victim`
    partway: the notifications' ids per user, in order, and when the kill was."""
    loop = asyncio.get_running_loop()
    notified: dict[int, list[int]] = {u.pk: [] for u in users}
    total = max(NOTIFICATIONS, MESSAGES_PER_TAB)
    for step in range(total):
        if step == int(total * KILL_AFTER):
            victim.process.kill()
            killed_at = loop.time()
        if step < MESSAGES_PER_TAB:
            for tab in chat_tabs:
                tab.send_message(f"{tab.me} #{step}")
        if step < NOTIFICATIONS:
            user = users[step % len(users)]
            created = await sync_to_async(notification_create)(recipient=user, title=f"n{step}")
            notified[user.pk].append(created.pk)
        await asyncio.sleep(SEND_EVERY)
    return notified, killed_at


async def whole(chat_tabs, sse_tabs, notified, room) -> bool:
    """Every message stored, every tab showing them all, every stream holding its share."""
    ids = {m async for m in Message.objects.filter(room=room).values_list("id", flat=True)}
    return (
        len(ids) >= USERS * MESSAGES_PER_TAB
        and all(tab.shown >= ids and not tab.pending for tab in chat_tabs)
        and all(
            len(tab.notifications()) >= len(notified[pk])
            for pk, tab in zip(notified, sse_tabs, strict=True)
        )
    )
