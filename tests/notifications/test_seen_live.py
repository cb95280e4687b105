"""What counts as "seen live" for the email worker: a connection carrying the user's own
channel, over SSE, long poll or `/ws/events/`; not one that carries only shared channels."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from notifications.channels import channels_for_user
from notifications.emails.worker import run_pass
from notifications.models import Notification
from notifications.services import notification_create
from realtime import channels, seen_live
from realtime.redis_clients import close_loop_clients
from realtime.sse import Connection
from tests.support.communicators import events_socket

pytestmark = pytest.mark.django_db(transaction=True)


@sync_to_async
def arrived_while(user, title: str) -> Notification:
    return notification_create(recipient=user, title=title)


@sync_to_async
def emails_due_now():
    """Age every notification past the default kind's delay, then run one worker pass."""
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    return run_pass()


@pytest.fixture
async def redis_clients():
    yield
    await close_loop_clients()


def test_only_the_users_own_notification_channel_has_an_owner():
    assert channels.owner_of("user-42") == 42
    assert channels.owner_of("user-42-read") is None  # read states, not notifications
    assert [channels.owner_of(n) for n in ("group-7", "announcements", "nope-1")] == [None] * 3


def test_a_stream_with_the_pages_defaults_counts_and_one_on_shared_channels_does_not(alice):
    mine = Connection(
        user_id=alice.pk, session_key=None, positions=dict.fromkeys(channels_for_user(alice), 0)
    )
    shared = Connection(user_id=alice.pk, session_key=None, positions={"announcements": 0})
    assert (mine.live, shared.live) == (True, False)


async def test_a_socket_on_the_users_channel_keeps_what_it_showed_out_of_email(
    alice, bob, smtp, redis_clients
):
    socket = await events_socket(alice, f"user-{alice.pk}")
    await arrived_while(alice, "shown on alice's socket")
    await arrived_while(bob, "bob was away")
    frame = await socket.receive_json_from(timeout=5)
    assert frame["data"]["title"] == "shown on alice's socket"
    await socket.disconnect()  # closing records the moment: what came before it was seen

    tally = await emails_due_now()
    assert [m["To"] for m in smtp.wait_for(1)] == ["bob@example.com"]
    assert tally.skipped == {"seen live": 1}


async def test_a_socket_on_shared_channels_only_does_not_count_as_seen(alice, smtp, redis_clients):
    socket = await events_socket(alice, "announcements")
    await arrived_while(alice, "alice was on the ticker page")
    await socket.disconnect()

    tally = await emails_due_now()
    assert [m["To"] for m in smtp.wait_for(1)] == ["alice@example.com"]
    assert tally.skipped == {}


async def test_an_open_socket_renews_its_moment_each_beat(alice, monkeypatch, redis_clients):
    monkeypatch.setattr(seen_live, "REFRESH_SECONDS", 0.2)
    socket = await events_socket(alice, "announcements", f"user-{alice.pk}")
    moments = []
    for _ in range(50):  # up to 5 s on a busy machine; a beat is 0.2 s
        await asyncio.sleep(0.1)
        moment = (await sync_to_async(seen_live.last_live_ms)(user_ids=[alice.pk])).get(alice.pk)
        if moment is not None and moment not in moments:
            moments.append(moment)
        if len(moments) == 3:  # the one at open, then two beats
            break
    await socket.disconnect()
    assert len(moments) == 3 and moments == sorted(moments)
