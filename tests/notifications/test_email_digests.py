"""Hourly and daily digests: one email per user in their time zone, none for nothing new."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import pytest
from django.utils import timezone

from notifications.emails import sending
from notifications.emails.schedule import due_at
from notifications.emails.worker import run_pass
from notifications.models import (
    CategoryPreference,
    EmailState,
    Notification,
    NotificationEmail,
    NotificationSettings,
)
from notifications.services import notification_create
from tests.support.factories import make_users
from tests.support.smtp import body_of

pytestmark = pytest.mark.django_db


def digest_of(user, mode: str = "daily", time_zone: str = "UTC") -> None:
    CategoryPreference.objects.create(user=user, category="general", email=mode)
    NotificationSettings.objects.create(user=user, time_zone=time_zone)


def old(user, title: str, *, days: float = 2) -> Notification:
    n = notification_create(recipient=user, title=title)
    Notification.objects.filter(pk=n.pk).update(created_at=timezone.now() - timedelta(days=days))
    return n


def test_a_daily_digest_lists_a_users_unread_notifications_in_one_email(alice, bob, smtp):
    digest_of(alice, time_zone="Europe/Berlin")
    first, second = old(alice, "first reply"), old(alice, "second reply")
    read = old(alice, "already read")
    Notification.objects.filter(pk=read.pk).update(read_at=timezone.now())
    old(bob, "bob's own, emailed on its own")

    tally = run_pass()
    run_pass()  # nothing new: nothing more

    messages = smtp.wait_for(2)
    assert len(smtp.messages()) == 2 and (tally.digests, tally.sent) == (1, 1)
    [digest] = [m for m in messages if m["To"] == "alice@example.com"]
    assert digest["Subject"] == "Your daily digest: 2 unread notifications"
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    text, html = body_of(digest, "plain"), body_of(digest, "html")
    for title in ("first reply", "second reply"):
        assert title in text and title in html
    assert "already read" not in text
    assert text.index("second reply") < text.index("first reply")  # newest first
    states = dict(NotificationEmail.objects.values_list("notification_id", "state"))
    assert states[first.pk] == states[second.pk] == EmailState.SENT
    assert states[read.pk] == EmailState.SKIPPED


def test_users_with_nothing_new_get_no_digest(alice, bob, smtp):
    digest_of(alice)
    digest_of(bob)
    n = old(bob, "read already")
    Notification.objects.filter(pk=n.pk).update(read_at=timezone.now())
    assert run_pass().digests == 0
    assert smtp.messages() == []


def test_a_digest_not_yet_due_waits(alice, smtp):
    # A zone whose 08:00 (the daily digest) is not in the next few minutes.
    near_eight = time(7, 55) <= timezone.now().time() <= time(8, 5)
    digest_of(alice, time_zone="Asia/Tokyo" if near_eight else "UTC")
    notification_create(recipient=alice, title="a minute ago")
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    run_pass()
    assert smtp.messages() == []
    row = NotificationEmail.objects.get()
    assert row.state == EmailState.PENDING and row.due_at > timezone.now()


def test_digest_users_are_taken_in_chunks_each_getting_their_own(smtp):
    users = make_users(5, "digest")
    for user in users:
        user.email = f"{user.username}@example.com"
        user.save()
        digest_of(user)
        old(user, f"for {user.username}")
    from notifications.emails import scan

    scan.scan_batch(now=timezone.now())
    tally = sending.Tally()
    sending.send_due_digests(now=timezone.now(), tally=tally, chunk=2)
    assert tally.digests == 5
    assert sorted(m["To"] for m in smtp.wait_for(5)) == [u.email for u in users]


@pytest.mark.parametrize(
    ("mode", "zone", "created", "due"),
    [
        # 08:00 in New York (UTC-4 in summer time) is 12:00 UTC, the next morning.
        ("daily", "America/New_York", "2026-03-10T13:00", "2026-03-11T12:00"),
        # Before 08:00 local: the same morning.
        ("daily", "Europe/Berlin", "2026-01-10T05:00", "2026-01-10T07:00"),
        ("hourly", "Asia/Kolkata", "2026-01-10T05:10", "2026-01-10T05:30"),
        ("immediate", "UTC", "2026-01-10T05:10", "2026-01-10T05:20"),
    ],
)
def test_digests_are_due_at_the_users_local_time(mode, zone, created, due):
    def at(text: str) -> datetime:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)

    assert due_at(mode=mode, created_at=at(created), delay=600, time_zone=zone) == at(due)
