"""Email workers as real processes: two at once, one SIGKILLed mid-batch, every email once."""

from __future__ import annotations

import signal
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
    smtp.delay = 0.01  # ~100 emails/s per worker: both are mid-batch for a few seconds
    env = {"EMAIL_URL": smtp.url}

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

    # The killed worker's lease runs out (5 minutes; moved back here), and a pass resumes.
    expired = timezone.now() - timedelta(seconds=1)
    NotificationEmail.objects.exclude(claimed_until=None).update(claimed_until=expired)
    done = run_manage("send_notification_emails", redis_url=redis_server.url, env=env)
    assert done.returncode == 0, done.stderr[-2000:]

    received = Counter(str(m["Message-ID"]) for m in smtp.messages())
    assert [mid for mid, n in received.items() if n > 1] == []  # never two of one
    states = Counter(NotificationEmail.objects.values_list("state", flat=True))
    in_doubt = NotificationEmail.objects.filter(state=EmailState.FAILED)
    # At most the emails the killed worker had in flight are "in doubt": failed
    # with the reason, not resent, whether or not the server got it.
    assert states[EmailState.SENT] + in_doubt.count() == EMAILS, states
    assert in_doubt.count() <= SMTP_CONNECTIONS
    assert all(r.last_error == claims.IN_DOUBT for r in in_doubt)
    sent_ids = set(
        NotificationEmail.objects.filter(state=EmailState.SENT).values_list(
            "notification_id", flat=True
        )
    )
    assert {f"<pulse-notification-{pk}@127.0.0.1>" for pk in sent_ids} <= set(received)
    assert len(received) >= EMAILS - SMTP_CONNECTIONS
