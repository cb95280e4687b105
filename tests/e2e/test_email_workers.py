"""Email workers as real processes: two at once, one SIGKILLed mid-batch, every email once
(but for the few in SMTP DATA at the kill, which are "in doubt" and arrived at most once)."""

from __future__ import annotations

import signal
import time
from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from notifications.emails import claims
from notifications.emails.sending import SMTP_CONNECTIONS
from notifications.models import EmailState, Notification, NotificationEmail
from notifications.services import notifications_send_batch
from tests.support.factories import make_users
from tests.support.servers import run_manage, start_manage

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

EMAILS = 300


def test_two_workers_one_killed_mid_batch_send_every_due_email_exactly_once(redis_server, smtp):
    users = make_users(EMAILS // 3, "mailed")
    for user in users:
        user.email = f"{user.username}@example.com"
    type(users[0]).objects.bulk_update(users, ["email"])
    for i in range(3):
        notifications_send_batch(recipient_ids=[u.pk for u in users], title=f"reply {i}")
    Notification.objects.update(created_at=timezone.now() - timedelta(minutes=11))
    started = time.monotonic()
    smtp.delay = 0.01  # ~100 emails/s per worker: both are mid-batch for a few seconds

    lease = 10  # seconds: the killed worker's unsent claims go to the next pass after it
    env = {"EMAIL_URL": smtp.url, "NOTIFICATION_EMAIL_LEASE_SECONDS": str(lease)}

    workers = [
        start_manage("send_notification_emails", redis_url=redis_server.url, env=env)
        for _ in range(2)
    ]
    smtp.wait_for(EMAILS // 5, timeout=120)
    assert workers[0].poll() is None, "the worker to kill finished before the kill"
    workers[0].send_signal(signal.SIGKILL)
    workers[0].wait(timeout=30)
    _, err = workers[1].communicate(timeout=300)
    assert workers[1].returncode == 0, err.decode()[-2000:]

    # Once the dead worker's lease ran out, a pass sends what it had claimed but not begun.
    held = NotificationEmail.objects.exclude(claimed_until=None)
    until = max(held.values_list("claimed_until", flat=True), default=timezone.now())
    time.sleep(max(0.0, (until - timezone.now()).total_seconds()) + 1)
    assert time.monotonic() < started + 600, "lease longer than the test can wait"
    done = run_manage("send_notification_emails", redis_url=redis_server.url, env=env)
    assert done.returncode == 0, done.stderr[-2000:]

    received = Counter(str(m["Message-ID"]) for m in smtp.messages())
    rows = dict(NotificationEmail.objects.values_list("notification_id", "state"))
    expected = {pk: f"<pulse-notification-{pk}@127.0.0.1>" for pk in rows}
    assert len(rows) == EMAILS and set(received) <= set(expected.values())
    # Every due email went out exactly once, except those whose SMTP DATA had begun when
    # the worker died ("in doubt", never resent): each of those arrived at most once.
    in_doubt = {pk for pk, state in rows.items() if state == EmailState.IN_DOUBT}
    assert {pk for pk, state in rows.items() if state != EmailState.SENT} == in_doubt, rows
    assert all(received[expected[pk]] == 1 for pk in rows if pk not in in_doubt)
    assert all(received[expected[pk]] <= 1 for pk in in_doubt)
    assert len(in_doubt) <= SMTP_CONNECTIONS  # at most the one wave in DATA at the kill
    doubts = NotificationEmail.objects.filter(state=EmailState.IN_DOUBT)
    assert all(r.last_error == claims.IN_DOUBT for r in doubts)
