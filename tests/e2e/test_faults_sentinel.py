"""The Redis primary SIGKILLed under a bulk send and chat traffic, with Sentinel (issue 14).

Two server processes and the bulk-send command reach Redis only through three sentinels
(a redis+sentinel:// REDIS_URL). While `send_notifications` runs and chat senders keep
typing, the primary is killed; the sentinels promote the replica. Asserted as users see
it: delivery resumes by itself on the new primary, every stored notification reaches its
SSE client exactly once (raw events, no client-side dedupe), every stored chat message is
shown in every tab of its room (chat.js shows each id once) and none is stored twice,
and what a sender was not refused is stored. The time to recover is printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Iterator

import httpx
import pytest
from asgiref.sync import sync_to_async

from feeds.models import Message, Room
from notifications.models import Notification
from tests.support.chat_tab import ChatTab
from tests.support.factories import make_sessions, make_users, session_cookie
from tests.support.sentinel import Node, SentinelGroup
from tests.support.servers import RUN_DIR, UNCAPPED, Server, create_in_another_process, run_manage
from tests.support.sse_client import open_stream
from tests.support.sse_tab import SSETab

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

RECIPIENTS = 1500  # the bulk send's audience (plus the chat users)
WATCHED = 30  # of them with an SSE stream, spread over the audience and both processes
CHAT_TABS, ROOMS, SENDERS = 40, 2, 10
SEND_EVERY = 0.5  # s per sender: well inside the chat rate limit
TALK_BEFORE, TALK_AFTER = 2.0, 8.0  # s of chat before the kill and after the failover
FAILOVER_WITHIN = 60.0  # the sentinels here take ~2-3 s; CI is slower and busy
RECOVER_WITHIN = 60.0  # from the failover to every client holding everything
RUN_FOR = 240.0  # every client loop ends by then, whatever happens


@pytest.fixture
def servers(sentinel_redis: SentinelGroup) -> Iterator[list[Server]]:
    started: list[Server] = []
    try:
        for n in range(2):
            server = Server(
                redis_url=sentinel_redis.url,
                log_path=RUN_DIR / f"sentinel-server-{n}.log",
                env=UNCAPPED,
            )
            started.append(server.start())
        yield started
    finally:
        for server in started:
            server.stop()


def setup_data() -> tuple[list, list[str], list, list[str], list[Room]]:
    recipients = make_users(RECIPIENTS, "fo")
    watched = recipients[:: RECIPIENTS // WATCHED][:WATCHED]
    chatters = make_users(CHAT_TABS, "fochat")
    rooms = [Room.objects.create(slug=f"fo-{r}", title=f"Failover {r}") for r in range(ROOMS)]
    return watched, make_sessions(watched), chatters, make_sessions(chatters), rooms


def notification_ids(users: list) -> dict[int, list[int]]:
    ids: dict[int, list[int]] = {u.pk: [] for u in users}
    rows = Notification.objects.filter(recipient__in=users).values_list("recipient", "id")
    for recipient, pk in rows:
        ids[recipient].append(pk)
    return ids


def chat_state(room_ids: list[int]) -> tuple[dict[str, list[tuple[int, int]]], int]:
    """(client_msg_id -> [(message id, room id)], the highest message id)."""
    out: dict[str, list[tuple[int, int]]] = {}
    top = 0
    rows = Message.objects.filter(room_id__in=room_ids).values_list("client_msg_id", "id", "room")
    for cmid, message_id, room_id in rows:
        out.setdefault(cmid, []).append((message_id, room_id))
        top = max(top, message_id)
    return out, top


def at(seconds: float | None) -> str:
    return "never" if seconds is None else f"{seconds:.2f} s"


async def poll_ready(url: str, stop: asyncio.Event, seen: list[tuple[float, int]]) -> None:
    """GET /readyz every 0.2 s until stopped, as a load balancer would: (time, status)."""
    loop = asyncio.get_running_loop()
    async with httpx.AsyncClient(timeout=5) as client:
        while not stop.is_set():
            try:
                status = (await client.get(f"{url}/readyz")).status_code
            except httpx.HTTPError:
                status = 0
            seen.append((loop.time(), status))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.2)


async def keep_sending(tab: ChatTab, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        tab.send_message(f"{tab.me} says {n}")
        n += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), SEND_EVERY)


async def test_primary_killed_under_bulk_send_and_chat_fails_over_and_loses_nothing(
    sentinel_redis: SentinelGroup, servers: list[Server]
):
    watched, sse_sessions, chatters, chat_sessions, rooms = await sync_to_async(setup_data)()
    room_ids = [r.pk for r in rooms]
    loop = asyncio.get_running_loop()
    rng = random.Random(seed := random.randrange(2**32))
    print(f"jitter seed {seed}")
    until = loop.time() + RUN_FOR
    sse_tabs = [
        SSETab(port=servers[i % 2].port, session=session) for i, session in enumerate(sse_sessions)
    ]
    chat_tabs = [
        ChatTab(
            port=servers[(i // ROOMS) % 2].port,
            slug=rooms[i % ROOMS].slug,
            session=chat_sessions[i],
            username=user.username,
            rng=rng,
        )
        for i, user in enumerate(chatters)
    ]
    room_of = {tab: room_ids[i % ROOMS] for i, tab in enumerate(chat_tabs)}
    senders = chat_tabs[:SENDERS]
    tasks = [loop.create_task(t.run(until=until)) for t in (*sse_tabs, *chat_tabs)]
    stop_talking, stop_polling = asyncio.Event(), asyncio.Event()
    talking: list[asyncio.Task[None]] = []
    readiness: list[tuple[float, int]] = []
    polling = loop.create_task(poll_ready(servers[0].url, stop_polling, readiness))
    try:
        await asyncio.wait_for(
            asyncio.gather(
                *(t.opened.wait() for t in sse_tabs), *(t.welcomed.wait() for t in chat_tabs)
            ),
            60,
        )
        talking = [loop.create_task(keep_sending(t, stop_talking)) for t in senders]
        await asyncio.sleep(TALK_BEFORE)

        # The bulk send starts; the primary dies once its first batches reach clients.
        send = loop.create_task(
            asyncio.to_thread(
                run_manage,
                "send_notifications",
                "--title",
                "Failover drill",
                "--all",
                "--batch-size",
                "20",
                "--key",
                "failover-1",
                redis_url=sentinel_redis.url,
                timeout=180,
            )
        )
        while not any(t.notifications() for t in sse_tabs):
            assert not send.done(), (await send).stderr
            await asyncio.sleep(0.01)
        old = await asyncio.to_thread(sentinel_redis.kill_primary)
        killed_at = loop.time()
        sending_when_killed = not send.done()
        _, top_at_kill = await sync_to_async(chat_state)(room_ids)

        # Measured while it happens: when the sentinels promoted the replica, when the
        # first delivery after the kill reached a client, when every client held what was
        # stored before the failover.
        failover = loop.create_task(asyncio.to_thread(sentinel_redis.wait_for_failover, old))
        have_at_kill = sum(bool(t.notifications()) for t in sse_tabs)
        first_sse = first_chat = sse_done = chat_caught_up = failover_at = send_ended = None
        outage: dict[int, set[int]] = {}  # room -> messages stored before the failover
        stored: dict[str, list[tuple[int, int]]] = {}
        for _ in range(int((FAILOVER_WITHIN + RECOVER_WITHIN) / 0.1)):
            now = loop.time() - killed_at
            if failover_at is None and failover.done():
                await failover
                failover_at = now
                loop.call_later(TALK_AFTER, stop_talking.set)
                stored, _ = await sync_to_async(chat_state)(room_ids)
                for ms in stored.values():
                    for m, room in ms:
                        outage.setdefault(room, set()).add(m)
            if send_ended is None and send.done():
                send_ended = now
            have = sum(bool(t.notifications()) for t in sse_tabs)
            if first_sse is None and have > have_at_kill:
                first_sse = now
            if sse_done is None and have == WATCHED:
                sse_done = now
            if first_chat is None and any(max(t.shown, default=0) > top_at_kill for t in chat_tabs):
                first_chat = now
            if (
                chat_caught_up is None
                and failover_at is not None
                and all(outage.get(room_of[t], set()) <= t.shown for t in chat_tabs)
            ):
                chat_caught_up = now
            if None not in (sse_done, chat_caught_up) and stop_talking.is_set() and send.done():
                break
            await asyncio.sleep(0.1)
        assert failover_at is not None, "the sentinels did not promote the replica"
        result = await send
        await asyncio.gather(*talking)

        # Every chat tab catches up with everything stored, every sender settles.
        chat_done = None
        for _ in range(int(RECOVER_WITHIN / 0.2)):
            stored, _ = await sync_to_async(chat_state)(room_ids)
            in_room = {
                r: {m for ms in stored.values() for m, rr in ms if rr == r} for r in room_ids
            }
            if all(in_room[room_of[t]] <= t.shown for t in chat_tabs) and not any(
                t.pending for t in senders
            ):
                chat_done = loop.time() - killed_at
                break
            await asyncio.sleep(0.2)

        # A notification created now flows live from another process, exactly once.
        fresh = await asyncio.to_thread(
            create_in_another_process,
            watched[0].username,
            title="after failover",
            redis_url=sentinel_redis.url,
        )
        assert fresh.returncode == 0, fresh.stderr
        for _ in range(300):
            if len(sse_tabs[0].notifications()) >= 2:
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # anything doubled would have arrived by now
        stored, _ = await sync_to_async(chat_state)(room_ids)
        expected = await sync_to_async(notification_ids)(watched)
    finally:
        stop_talking.set()
        stop_polling.set()
        for tab in (*sse_tabs, *chat_tabs):
            tab.close()
        await asyncio.gather(*tasks, *talking, polling, return_exceptions=True)

    sent = [cmid for tab in senders for cmid in tab.sent]
    refused = {cmid: code for tab in senders for cmid, code in tab.refused.items()}
    # /readyz: 200 before the kill, 503 while no primary answers, 200 again after.
    unready = [t - killed_at for t, status in readiness if status == 503]
    ready_again = next(
        (t - killed_at for t, status in readiness if unready and t - killed_at > unready[-1]), None
    )
    print(
        f"/readyz: 503 from {at(unready[0] if unready else None)} to "
        f"{at(unready[-1] if unready else None)}, 200 again at {at(ready_again)}"
    )
    print(
        f"primary killed {'during' if sending_when_killed else 'after'} the bulk send "
        f"(it ended {at(send_ended)} after the kill); "
        f"replica promoted {at(failover_at)} after the kill; "
        f"SSE: first delivery after the kill at {at(first_sse)}, all {WATCHED} clients "
        f"complete at {at(sse_done)}; chat: first new message shown at {at(first_chat)}, "
        f"every tab holding all messages stored before the failover at {at(chat_caught_up)}; "
        f"chat sent {len(sent)}, "
        f"stored {sum(len(v) for k, v in stored.items() if k)}, refused {len(refused)} "
        f"{dict(Counter(refused.values()))}"
    )
    assert readiness[0][1] == 200 and unready and readiness[-1][1] == 200, readiness
    assert result.returncode == 0, result.stderr
    assert f"sent {RECIPIENTS + CHAT_TABS} notifications" in result.stdout
    assert sending_when_killed, "the bulk send ended before the kill: make it longer"

    # SSE: each watched user's stream carried each of their stored notifications once.
    for tab, user in zip(sse_tabs, watched, strict=True):
        got = Counter(n["id"] for n in tab.notifications())
        assert sorted(got) == sorted(expected[user.pk]), user.username
        assert set(got.values()) == {1}, f"{user.username} got some twice: {got}"

    # Chat: every message a sender was not refused is stored once and shown in every
    # tab of its room; nothing refused was stored.
    assert chat_done is not None, "a chat tab never caught up, or a sender never settled"
    lost, doubled, unseen = [], [], []
    for cmid in sent:
        rows = stored.get(cmid, [])
        if cmid in refused:
            assert rows == [], f"{cmid} was refused and stored"
        elif not rows:
            lost.append(cmid)
        elif len(rows) > 1:
            doubled.append(cmid)
        else:
            message_id, room_id = rows[0]
            unseen += [
                t.me for t in chat_tabs if room_of[t] == room_id and message_id not in t.shown
            ]
    assert lost == [] and doubled == [] and unseen == []


def client_names(node: Node) -> set[str]:
    """Named connections on a node (the hubs name theirs `pulse-hub-<pid>`)."""
    return {c["name"] for c in node.client().client_list() if c["name"]}


def others_on(node: Node) -> list[str]:
    """Connections on a node other than the sentinels', replication and this query."""
    return [
        f"{c['name']} {c['cmd']}"
        for c in node.client().client_list()
        if not c["name"].startswith("sentinel-")
        and not c["cmd"].startswith("client")
        and not set(c["flags"]) & {"S", "M"}  # replication links, both ways
    ]


async def test_a_planned_failover_moves_every_server_connection_to_the_new_primary(
    sentinel_redis: SentinelGroup, servers: list[Server], alice
):
    cookie = await sync_to_async(session_cookie)(alice)
    streams = [await open_stream(s.url, session=cookie) for s in servers]
    hubs = {f"pulse-hub-{s.process.pid}" for s in servers}
    try:
        old = sentinel_redis.primary
        assert hubs <= client_names(old)
        assert len(others_on(old)) >= len(servers)  # the hubs, at least
        await asyncio.to_thread(sentinel_redis.failover)
        new = await asyncio.to_thread(sentinel_redis.wait_for_failover, old)

        # The sentinels disconnect the demoted primary's clients; each hub asks them again
        # and subscribes on the new primary (a PUBLISH to a replica would reach no one).
        for _ in range(300):
            if hubs <= client_names(new):
                break
            await asyncio.sleep(0.1)
        assert hubs <= client_names(new)
        # Nor is any other server connection left on the demoted one (state, publishers).
        assert others_on(old) == []

        created = await asyncio.to_thread(
            create_in_another_process, "alice", title="planned", redis_url=sentinel_redis.url
        )
        assert created.returncode == 0, created.stderr
        for stream in streams:
            (event,) = await stream.collect("notification", 1, timeout=15)
            assert event.json()["title"] == "planned"
    finally:
        for stream in streams:
            await stream.close()
