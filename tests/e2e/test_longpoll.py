"""Long and short polls on a real daphne: what only polls do (holding, waiting, answering
once). Replay, access and exactly-once run over every transport in test_sse_stream.py."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async

from notifications.services import notification_create
from tests.support.factories import session_cookie
from tests.support.transports import POLL_PATH
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HELD = 40


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no Threads line")


async def held_polls(client: httpx.AsyncClient, count: int) -> bool:
    """Whether the server holds `count` polls now (its /api/health/, staff only)."""
    return (await client.get("/api/health/")).json()["held_polls"] == count


async def poll(client: httpx.AsyncClient, **params: object) -> dict:
    response = await client.get(POLL_PATH, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def test_held_polls_hold_no_thread_and_all_answer_one_event(server, alice):
    alice.is_staff = True  # /api/health/ and /metrics
    await sync_to_async(alice.save)()
    cookie = await sync_to_async(session_cookie)(alice)
    timeout = httpx.Timeout(10, read=40)
    limits = httpx.Limits(max_connections=HELD + 5)
    async with httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": cookie}, timeout=timeout, limits=limits
    ) as client:
        start = (await poll(client, wait=0))["cursor"]
        before = threads_of(server.process.pid)
        held = [asyncio.create_task(poll(client, cursor=start)) for _ in range(HELD)]

        await until(lambda: held_polls(client, HELD), 20, f"{HELD} held polls")
        assert threads_of(server.process.pid) - before < 5  # not a thread per poll
        metrics = (await client.get("/metrics")).text
        assert f'pulse_connections_open{{transport="longpoll"}} {HELD}.0' in metrics
        assert not any(task.done() for task in held)

        n = await sync_to_async(notification_create)(recipient=alice, title="for every poll")
        answers = await asyncio.wait_for(asyncio.gather(*held), 20)
        for answer in answers:
            assert [(e["event"], e["data"]["id"]) for e in answer["events"]] == [
                ("notification", n.pk)
            ]
            assert answer["cursor"] == answer["events"][-1]["id"]
        # from that cursor there is nothing more: exactly once
        assert (await poll(client, wait=0, cursor=answers[0]["cursor"]))["events"] == []
        await until(lambda: held_polls(client, 0), 10, "held polls to end")


async def test_a_short_poll_answers_at_once_and_a_long_one_when_its_wait_is_over(server, alice):
    cookie = await sync_to_async(session_cookie)(alice)
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as client:
        first = await poll(client, wait=0)
        assert first["events"] == []
        assert first["cursor"].startswith(f"user-{alice.pk}:")
        loop = asyncio.get_running_loop()
        began = loop.time()
        later = await poll(client, wait=1, cursor=first["cursor"])
        assert loop.time() - began >= 1.0
        assert later == {"events": [], "cursor": first["cursor"]}
        # the Last-Event-ID header is a cursor too
        n = await sync_to_async(notification_create)(recipient=alice, title="one")
        response = await client.get(
            POLL_PATH, params={"wait": 0}, headers={"Last-Event-ID": first["cursor"]}
        )
        events = response.json()["events"]
        assert [(e["event"], e["data"]["title"]) for e in events] == [("notification", "one")]
        assert events[0]["data"]["id"] == n.pk


async def test_a_held_poll_of_a_session_that_logs_out_answers_with_the_stream_error(server, alice):
    alice.is_staff = True  # /api/health/
    await sync_to_async(alice.save)()
    cookie = await sync_to_async(session_cookie)(alice)
    async with httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": cookie}, timeout=httpx.Timeout(10, read=40)
    ) as client:
        start = (await poll(client, wait=0))["cursor"]
        held = asyncio.create_task(poll(client, cursor=start))
        await until(lambda: held_polls(client, 1), 10, "the poll to be held")
        page = await client.get("/notifications/")
        token = client.cookies["csrftoken"]
        await client.post("/logout/", headers={"X-CSRFToken": token, "Referer": server.url + "/"})
        answer = await asyncio.wait_for(held, 15)
        assert page.status_code == 200
    (event,) = answer["events"]
    assert event["event"] == "stream-error" and event["id"] is None
    assert event["data"]["reason"] == "session-ended"
    assert answer["cursor"] == start
