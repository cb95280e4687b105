"""Email and inbox states together: collapses, seen/archived/deleted, in-doubt emails."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from notifications import services
from notifications.emails import claims, scan
from notifications.emails.messages import category_of
from notifications.emails.worker import run_pass
from notifications.models import (
    CategoryPreference,
    EmailState,
    Notification,
    NotificationEmail,
)

pytestmark = pytest.mark.django_db


def reply(recipient, actor, target, *, minutes: float = 0) -> Notification:
    """`actor` replied on `target`, `minutes` ago (the default kind emails after 10)."""
    n = services.notification_create(
        recipient=recipient,
        kind="general",
        title=f"{actor.username} replied to your comment",
        actor=actor,
        target=target,
    )
    if minutes:
        Notification.objects.filter(pk=n.pk).update(
            created_at=timezone.now() - timedelta(minutes=minutes)
        )
    return n


def make_due() -> None:
    """Time passes: every email row is due, every notification older than the scan's lag."""
    now = timezone.now()
    NotificationEmail.objects.update(due_at=now - timedelta(seconds=1))
    Notification.objects.filter(created_at__gt=now - timedelta(minutes=1)).update(
        created_at=now - timedelta(minutes=1)
    )


def message_ids(smtp) -> Counter[str]:
    return Counter(str(m["Message-ID"]) for m in smtp.messages())


def test_a_collapse_before_the_email_is_emailed_once_as_the_surviving_row(
    alice, bob, charlie, smtp
):
    post = Group.objects.create(name="post")
    first = reply(alice, bob, post, minutes=5)
    run_pass()  # scanned: its email is due in 5 minutes
    due = NotificationEmail.objects.get(notification=first).due_at
    survivor = reply(alice, charlie, post)

    row = NotificationEmail.objects.get()  # the earlier row went, its email moved over
    assert (row.notification_id, row.state, row.due_at) == (survivor.pk, EmailState.PENDING, due)
    make_due()
    run_pass()
    run_pass()  # the survivor is scanned now too: its email row exists, nothing more is sent
    assert message_ids(smtp) == Counter({f"<pulse-notification-{survivor.pk}@127.0.0.1>": 1})
    assert smtp.messages()[0]["Subject"] == "charlie and 1 other replied to your comment"


def test_a_collapse_while_a_worker_holds_the_claim_is_sent_once_by_the_next_pass(
    alice, bob, charlie, smtp
):
    post = Group.objects.create(name="post")
    first = reply(alice, bob, post, minutes=11)
    scan.scan_batch(now=timezone.now())
    now = timezone.now()
    token, ids = claims.claim(NotificationEmail.objects.filter(due_at__lte=now), now=now, limit=9)
    assert NotificationEmail.objects.get(pk__in=ids).notification_id == first.pk

    survivor = reply(alice, charlie, post)  # while that worker builds its emails
    assert claims.start_sending(token=token, ids=ids) == set()  # it sends nothing
    claims.finish(token=token, ids=ids, state=EmailState.SENT, now=now)  # and records nothing
    make_due()
    assert run_pass().sent == 1
    assert message_ids(smtp) == Counter({f"<pulse-notification-{survivor.pk}@127.0.0.1>": 1})


def test_a_collapse_after_the_email_went_is_a_new_email_for_the_new_reply(
    alice, bob, charlie, smtp
):
    post = Group.objects.create(name="post")
    first = reply(alice, bob, post, minutes=11)
    assert run_pass().sent == 1
    survivor = reply(alice, charlie, post)
    make_due()
    run_pass()  # scans the survivor: due after its own delay
    make_due()
    assert run_pass().sent == 1
    assert message_ids(smtp) == Counter(
        {f"<pulse-notification-{n.pk}@127.0.0.1>": 1 for n in (first, survivor)}
    )


@pytest.mark.parametrize("mode", ["immediate", "hourly"])
def test_what_was_seen_in_the_bell_archived_or_deleted_is_not_emailed(alice, smtp, mode):
    CategoryPreference.objects.create(user=alice, category=category_of("general"), email=mode)
    seen = services.notification_create(recipient=alice, title="seen in the bell")
    services.notifications_mark_seen(user=alice)
    archived, deleted, missed = (
        services.notification_create(recipient=alice, title=title)
        for title in ("archived", "deleted", "missed")
    )
    make_due()
    with_rows = run_pass()  # scanned, not yet due
    assert with_rows.sent == with_rows.digests == 0
    services.notification_archive(user=alice, notification_id=archived.pk)
    services.notification_delete(user=alice, notification_id=deleted.pk)
    make_due()

    tally = run_pass()
    assert tally.skipped == {"seen": 1, "archived": 1}
    [message] = smtp.messages()
    if mode == "immediate":
        assert message["Message-ID"] == f"<pulse-notification-{missed.pk}@127.0.0.1>"
    else:
        assert message["Subject"].endswith(": 1 unread notification")
    assert not NotificationEmail.objects.filter(notification_id=deleted.pk).exists()
    states = dict(NotificationEmail.objects.values_list("notification_id", "state"))
    assert states[seen.pk] == states[archived.pk] == EmailState.SKIPPED


def test_an_email_in_doubt_is_shown_in_the_admin_and_sent_only_when_staff_retry(alice, bob, smtp):
    n = reply(alice, bob, Group.objects.create(name="post"), minutes=11)
    scan.scan_batch(now=timezone.now())
    now = timezone.now()
    token, ids = claims.claim(NotificationEmail.objects.all(), now=now, limit=1)
    claims.start_sending(token=token, ids=ids)  # SMTP DATA began; then the worker died
    later = now + claims.lease() + timedelta(seconds=1)
    assert claims.recover(now=later) == (0, 1)
    assert run_pass().sent == 0  # never resent by itself

    staff = Client()
    bob.is_staff = bob.is_superuser = True
    bob.save()
    staff.force_login(bob)
    listing = staff.get("/admin/notifications/notificationemail/?state__exact=in_doubt")
    assert "In doubt (may have been sent)" in listing.content.decode()
    answer = staff.post(
        "/admin/notifications/notificationemail/",
        {"action": "retry_now", "_selected_action": ids},
        follow=True,
    )
    assert "may get a second copy" in answer.content.decode()
    assert run_pass().sent == 1
    assert message_ids(smtp) == Counter({f"<pulse-notification-{n.pk}@127.0.0.1>": 1})
