"""Notifications over a real daphne, a real Redis and a real client of each transport:
SSE, long polls and short polls (tests.support.transports)."""

import asyncio
import json

import httpx
import pytest
from asgiref.sync import sync_to_async

from notifications.services import notification_create, notification_mark_read
from notifications.views.stream import parse_event_id
from tests.support.factories import session_cookie
from tests.support.servers import create_in_another_process
from tests.support.transports import each_transport, feed_request, open_feed

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

create = sync_to_async(notification_create)


@pytest.mark.slow  # over 2 s on some transports
@each_transport
async def test_a_notification_made_in_another_process_reaches_the_recipient(
    transport, server, redis_server, alice
):
    stream = await open_feed(
        transport, server.url, session=await sync_to_async(session_cookie)(alice)
    )
    try:
        result = await asyncio.to_thread(
            create_in_another_process,
            "alice",
            title="Build #42 passed",
            body="All green",
            level="success",
            url="/builds/42/",
            redis_url=redis_server.url,
        )
        assert result.returncode == 0, result.stderr
        (event,) = await stream.collect("notification", 1, timeout=10)
        data = event.json()
        assert set(data) == {
            "id", "title", "body", "kind", "level", "url", "created_at", "unread", "unseen"
        }  # fmt: skip
        assert (data["title"], data["body"], data["level"], data["url"]) == (
            "Build #42 passed", "All green", "success", "/builds/42/"
        )  # fmt: skip
        assert (data["unread"], data["unseen"]) == (1, 1)
        assert parse_event_id(event.id) == {
            f"user-{alice.pk}": data["id"],
            f"user-{alice.pk}-read": 0,
            "announcements": 0,
        }
    finally:
        await stream.close()


@each_transport
async def test_reconnecting_with_last_event_id_replays_exactly_what_was_missed(
    transport, server, alice
):
    cookie = await sync_to_async(session_cookie)(alice)
    stream = await open_feed(transport, server.url, session=cookie)
    await create(recipient=alice, title="seen")
    (seen,) = await stream.collect("notification", 1)
    last_id = stream.last_id
    assert last_id == seen.id
    await stream.close()

    missed = [await create(recipient=alice, title=f"missed {i}") for i in range(5)]

    again = await open_feed(transport, server.url, session=cookie, last_event_id=last_id)
    try:
        replayed = await again.collect("notification", 5)
        assert [e.json()["id"] for e in replayed] == [n.pk for n in missed]
        assert all(e.json()["unread"] == 6 for e in replayed)
        # and nothing more: no duplicate of "seen", no second copy of the missed ones
        extra = await again.quiet(1.0)
        assert [e for e in extra if e.event == "notification"] == []
        live = await create(recipient=alice, title="live again")
        (after,) = await again.collect("notification", 1)
        assert after.json()["id"] == live.pk
    finally:
        await again.close()


@each_transport
async def test_a_first_connection_that_drops_before_any_event_loses_nothing(
    transport, server, alice
):
    cookie = await sync_to_async(session_cookie)(alice)
    stream = await open_feed(transport, server.url, session=cookie)
    first_id = stream.last_id  # pinned by the server before any event
    assert first_id.startswith(f"user-{alice.pk}:")
    await stream.close()
    gap = await create(recipient=alice, title="while away")
    again = await open_feed(transport, server.url, session=cookie, last_event_id=first_id)
    try:
        (event,) = await again.collect("notification", 1)
        assert event.json()["id"] == gap.pk
    finally:
        await again.close()


@each_transport
async def test_read_state_syncs_to_the_users_other_tabs(transport, server, alice):
    cookie = await sync_to_async(session_cookie)(alice)
    n = await create(recipient=alice, title="read me")
    newer = await create(recipient=alice, title="still unread")
    other_tab = await open_feed(transport, server.url, session=cookie)
    try:
        await sync_to_async(notification_mark_read)(user=alice, notification_id=n.pk)
        (event,) = await other_tab.collect("read", 1)
        assert event.json() == {"ids": [n.pk], "unread": 1, "unseen": 1, "newest": newer.pk}
    finally:
        await other_tab.close()


@each_transport
async def test_anonymous_gets_403_and_never_a_stream(transport, server):
    path, params = feed_request(transport)
    async with httpx.AsyncClient(base_url=server.url) as client:
        response = await client.get(path, params=params)
    assert response.status_code == 403
    assert response.json() == {"error": "authentication required"}


@each_transport
async def test_bob_sees_none_of_alices_events(transport, server, alice, bob):
    bob_cookie = await sync_to_async(session_cookie)(bob)
    async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": bob_cookie}) as c:
        path, params = feed_request(transport)
        for channel in (f"user-{alice.pk}", f"user-{alice.pk}-read"):
            response = await c.get(path, params={**params, "channel": channel})
            assert response.status_code == 403, channel
            assert response.json()["error"] == "permission denied"
    # bob's own stream, resumed from a forged id naming alice's channel, stays bob's
    forged = f"user-{alice.pk}:0,user-{bob.pk}:0"
    stream = await open_feed(transport, server.url, session=bob_cookie, last_event_id=forged)
    try:
        await create(recipient=alice, title="for alice only")
        mine = await create(recipient=bob, title="for bob")
        events = await stream.collect("notification", 1)
        assert [e.json()["id"] for e in events] == [mine.pk]
        assert "for alice only" not in json.dumps([e.data for e in await stream.quiet(0.5)])
    finally:
        await stream.close()


@pytest.mark.slow  # over 2 s on some transports
@each_transport
async def test_a_redis_restart_mid_stream_loses_nothing(transport, server, redis_server, alice):
    cookie = await sync_to_async(session_cookie)(alice)
    stream = await open_feed(transport, server.url, session=cookie)
    try:
        await create(recipient=alice, title="before")
        await stream.collect("notification", 1)
        await asyncio.to_thread(redis_server.stop)
        during = [await create(recipient=alice, title=f"during {i}") for i in range(3)]
        await asyncio.sleep(1.0)
        await asyncio.to_thread(redis_server.start)
        # the server's subscription comes back by itself and the stream re-reads storage
        got = await stream.collect("notification", 3, timeout=15)
        assert [e.json()["id"] for e in got] == [n.pk for n in during]
        after = await create(recipient=alice, title="after")
        (live,) = await stream.collect("notification", 1, timeout=10)
        assert live.json()["id"] == after.pk
    finally:
        await stream.close()


@each_transport
async def test_hostile_text_arrives_as_exactly_one_event(transport, server, alice):
    cookie = await sync_to_async(session_cookie)(alice)
    stream = await open_feed(transport, server.url, session=cookie)
    nasty = "line1\r\nevent: read\nid: 999\n\ndata: x\x00<img src=x onerror=alert(1)>"
    try:
        n = await create(recipient=alice, title="t\nid: 5", body=nasty)
        (event,) = await stream.collect("notification", 1)
        assert event.json()["body"] == nasty.replace("\x00", "\ufffd")
        assert event.json()["title"] == "t\nid: 5"
        assert parse_event_id(event.id)[f"user-{alice.pk}"] == n.pk
        assert [e for e in await stream.quiet(0.5) if e.event != "keep-alive"] == []
    finally:
        await stream.close()
