"""Faults against the real stack: Redis killed mid-send, long absences, two processes."""

import asyncio

import pytest
from asgiref.sync import sync_to_async

from notifications.models import Notification
from notifications.services import notification_create
from notifications.views.stream import parse_event_id
from tests.support.factories import make_users, session_cookie
from tests.support.figures import within
from tests.support.servers import create_in_another_process, run_manage
from tests.support.sse_client import open_stream

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

ALL_BACK_WITHIN = 30.0  # s after Redis returns: every client holds its notification


async def test_redis_down_during_a_bulk_send_loses_nothing_on_either_process(
    server, second_server, redis_server
):
    users = await sync_to_async(make_users)(1000, "bulk")
    watched = users[:50]
    cookies = [await sync_to_async(session_cookie)(u) for u in watched]
    streams = [
        await open_stream((server if i % 2 else second_server).url, session=cookie)
        for i, cookie in enumerate(cookies)
    ]
    try:
        await asyncio.to_thread(redis_server.stop)
        result = await asyncio.to_thread(
            run_manage,
            "send_notifications", "--title", "Outage drill", "--all",
            "--batch-size", "100", "--key", "drill-1",
            redis_url=redis_server.url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "sent 1000 notifications to 1000 users" in result.stdout
        assert await sync_to_async(Notification.objects.filter(send_key="drill-1").count)() == 1000
        await asyncio.sleep(5)  # the outage lasts 5 s, as in the drill
        await asyncio.to_thread(redis_server.start)
        back_at = asyncio.get_running_loop().time()

        # soon after Redis returns every client holds exactly its notification
        got = await asyncio.gather(
            *(s.collect("notification", 1, timeout=ALL_BACK_WITHIN + 5) for s in streams)
        )
        within(
            "sse_bulk_outage.all_delivered_s",
            asyncio.get_running_loop().time() - back_at,
            ALL_BACK_WITHIN,
        )
        for user, (event,) in zip(watched, got, strict=True):
            data = event.json()
            assert data["title"] == "Outage drill"
            mine = await sync_to_async(Notification.objects.get)(recipient=user)
            assert data["id"] == mine.pk
        extra = await asyncio.gather(*(s.quiet(0.5) for s in streams))
        assert [e for batch in extra for e in batch if e.event == "notification"] == []

        # and new events flow on both processes without a restart
        fresh = [
            await sync_to_async(notification_create)(recipient=u, title="after")
            for u in watched[:2]
        ]
        for stream, n in zip(streams[:2], fresh, strict=True):
            (event,) = await stream.collect("notification", 1, timeout=10)
            assert event.json()["id"] == n.pk
    finally:
        for stream in streams:
            await stream.close()


async def test_250_missed_events_replay_exactly_and_in_order(server, alice):
    cookie = await sync_to_async(session_cookie)(alice)
    stream = await open_stream(server.url, session=cookie)
    last_id = stream.last_id
    await stream.close()

    def burst() -> list[int]:
        return [notification_create(recipient=alice, title=f"#{i}").pk for i in range(250)]

    ids = await sync_to_async(burst)()
    again = await open_stream(server.url, session=cookie, last_event_id=last_id)
    try:
        got = await again.collect("notification", 250, timeout=20)
        assert [e.json()["id"] for e in got] == ids
        assert [e.json()["title"] for e in got] == [f"#{i}" for i in range(250)]
        assert [e for e in await again.quiet(0.5) if e.event == "notification"] == []
    finally:
        await again.close()


async def test_an_id_the_server_never_issued_gets_an_explicit_reset(server, alice):
    cookie = await sync_to_async(session_cookie)(alice)
    n = await sync_to_async(notification_create)(recipient=alice, title="current")
    forged = f"user-{alice.pk}:{n.pk + 10_000},user-{alice.pk}-read:0,announcements:0"
    stream = await open_stream(server.url, session=cookie, last_event_id=forged)
    try:
        reset = await stream.next(5)
        assert reset.event == "stream-reset"
        assert f"user-{alice.pk}" in reset.json()["channels"]
        live = await sync_to_async(notification_create)(recipient=alice, title="after reset")
        (event,) = await stream.collect("notification", 1)
        assert event.json()["id"] == live.pk
    finally:
        await stream.close()


async def test_a_client_away_for_too_long_gets_a_reset_not_thousands_of_events(server, alice):
    from notifications.replay import REPLAY_MAX

    cookie = await sync_to_async(session_cookie)(alice)
    stream = await open_stream(server.url, session=cookie)
    last_id = stream.last_id
    await stream.close()

    def flood() -> None:
        Notification.objects.bulk_create(
            Notification(recipient=alice, title=f"#{i}") for i in range(REPLAY_MAX + 1)
        )

    await sync_to_async(flood)()
    again = await open_stream(server.url, session=cookie, last_event_id=last_id)
    try:
        reset = await again.next(5)
        assert reset.event == "stream-reset"
        assert [e for e in await again.quiet(1.0) if e.event == "notification"] == []
        live = await sync_to_async(notification_create)(recipient=alice, title="after")
        (event,) = await again.collect("notification", 1)
        assert event.json()["id"] == live.pk
    finally:
        await again.close()


async def test_a_lone_failed_publish_is_delivered_before_the_next_event_from_another_process(
    server, redis_server, alice
):
    cookie = await sync_to_async(session_cookie)(alice)
    stream = await open_stream(server.url, session=cookie)
    try:
        # A publisher whose Redis is unreachable: the row commits, its publish fails, and
        # that process exits without ever publishing again (no resync from it).
        result = await asyncio.to_thread(
            create_in_another_process,
            "alice",
            title="lost publish",
            redis_url="redis://127.0.0.1:1/0",
        )
        assert result.returncode == 0, result.stderr
        assert "live publish failed (1 messages)" in result.stderr
        lost = await sync_to_async(Notification.objects.get)(recipient=alice, title="lost publish")
        # The next notification comes from another process, whose publishes all succeed.
        later = await sync_to_async(notification_create)(recipient=alice, title="later")

        got = await stream.collect("notification", 2, timeout=10)
        assert [e.json()["id"] for e in got] == [lost.pk, later.pk]
        assert [e for e in await stream.quiet(1.0) if e.event == "notification"] == []
        assert parse_event_id(got[-1].id)[f"user-{alice.pk}"] == later.pk
    finally:
        await stream.close()
