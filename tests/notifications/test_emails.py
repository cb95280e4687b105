"""Email for missed notifications, end to end through a real SMTP server (tests/support/smtp.py)."""

from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from asgiref.sync import async_to_sync
from django.core import signing
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from notifications.emails import claims, links
from notifications.emails.worker import run_pass
from notifications.models import (
    CategoryPreference,
    EmailState,
    Notification,
    NotificationEmail,
    NotificationSettings,
)
from notifications.services import notification_create
from realtime import seen_live
from realtime.redis_clients import sync_client
from realtime.redis_state import key
from tests.support.servers import free_port
from tests.support.smtp import REFUSED_DOMAIN, body_of

pytestmark = pytest.mark.django_db


def missed(user, *, minutes: float = 11, **fields) -> Notification:
    """A notification created `minutes` ago (the default kind emails after 10)."""
    n = notification_create(recipient=user, title=fields.pop("title", "bob replied"), **fields)
    Notification.objects.filter(pk=n.pk).update(
        created_at=timezone.now() - timedelta(minutes=minutes)
    )
    return n


def path_of(url: str) -> str:
    return urlsplit(url).path


def test_a_missed_notification_is_emailed_once_with_text_html_and_one_click_unsubscribe(
    alice, smtp
):
    n = missed(alice, body="about your post", url="/chat/")
    call_command("send_notification_emails")
    call_command("send_notification_emails")  # a second pass sends nothing again

    [message] = smtp.wait_for(1)
    assert message["To"] == "alice@example.com"
    assert message["Subject"] == "bob replied"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = str(message["List-Unsubscribe"]).strip()  # folded: a long value
    assert unsubscribe.startswith("<http://127.0.0.1:8000/email/unsubscribe/")
    assert message["Message-ID"] == f"<pulse-notification-{n.pk}@127.0.0.1>"
    text, html = body_of(message, "plain"), body_of(message, "html")
    open_url = links.open_url(n.pk)
    assert "about your post" in text and open_url in text
    assert "about your post" in html and f'href="{open_url}"' in html
    row = NotificationEmail.objects.get(notification=n)
    assert (row.state, row.attempts, row.sent_at is not None) == (EmailState.SENT, 1, True)


def test_nothing_is_emailed_before_the_kinds_delay_or_once_read(alice, smtp):
    missed(alice, minutes=2, title="too new")
    read = missed(alice, title="already read")
    Notification.objects.filter(pk=read.pk).update(read_at=timezone.now())
    run_pass()
    assert smtp.messages() == []
    assert NotificationEmail.objects.get(notification=read).last_error == "read"
    assert NotificationEmail.objects.filter(state=EmailState.PENDING).count() == 1


def test_a_notification_seen_on_a_live_stream_is_not_emailed(alice, bob, smtp):
    seen = missed(alice, title="seen")
    # alice's page held a stream after it arrived (tests/notifications/test_seen_live.py
    # has the streams and sockets that record it).
    async_to_sync(seen_live.mark)([alice.pk])
    missed(bob, title="bob was away")
    tally = run_pass()
    assert [m["To"] for m in smtp.wait_for(1)] == ["bob@example.com"]
    assert tally.skipped == {"seen live": 1}
    assert NotificationEmail.objects.get(notification=seen).state == EmailState.SKIPPED


def test_a_stream_that_closed_before_the_notification_came_does_not_count_as_seen(alice, smtp):
    missed(alice, minutes=11)
    twenty_minutes_ago = int((timezone.now() - timedelta(minutes=20)).timestamp() * 1000)
    sync_client().set(key("live", alice.pk), twenty_minutes_ago)
    assert seen_live.last_live_ms(user_ids=[alice.pk]) == {alice.pk: twenty_minutes_ago}
    run_pass()
    assert [m["To"] for m in smtp.wait_for(1)] == ["alice@example.com"]


def test_the_open_link_marks_it_read_in_the_recipients_session_only(alice, bob, smtp):
    n = missed(alice, url="/chat/")
    run_pass()
    [message] = smtp.wait_for(1)
    open_path = path_of(links.open_url(n.pk))
    assert open_path in body_of(message, "plain")

    anonymous = Client().get(open_path)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/login/")
    as_bob = Client()
    as_bob.force_login(bob)
    assert as_bob.get(open_path).status_code == 404
    assert Notification.objects.get(pk=n.pk).read_at is None

    as_alice = Client()
    as_alice.force_login(alice)
    response = as_alice.get(open_path)
    assert (response.status_code, response["Location"]) == (302, "/chat/")
    assert Notification.objects.get(pk=n.pk).read_at is not None


def test_one_click_unsubscribe_works_without_a_session_and_stops_the_next_email(alice, smtp):
    missed(alice)
    run_pass()
    [message] = smtp.wait_for(1)
    url = path_of(str(message["List-Unsubscribe"]).strip().strip("<>"))

    page = Client().get(url)  # a link scanner's GET changes nothing
    assert page.status_code == 200 and b"unsubscribe-form" in page.content
    assert not CategoryPreference.objects.filter(user=alice).exists()

    # RFC 8058: the mail provider POSTs this body, with no cookie and no CSRF token.
    response = Client(enforce_csrf_checks=True).post(
        url, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded"
    )
    assert response.status_code == 200 and b"unsubscribe-done" in response.content
    assert CategoryPreference.objects.get(user=alice, category="general").email == "off"
    missed(alice, title="after unsubscribing")
    run_pass()
    assert len(smtp.messages()) == 1


class _Signed100DaysAgo(signing.TimestampSigner):
    def timestamp(self) -> str:
        return signing.b62_encode(int(time.time()) - 100 * 24 * 3600)


@pytest.mark.parametrize("kind", ["tampered", "expired", "garbage"])
def test_a_tampered_or_expired_unsubscribe_link_shows_why_and_changes_nothing(alice, kind):
    good = path_of(links.unsubscribe_url(user_id=alice.pk, categories=["general"]))
    token = good.rstrip("/").rsplit("/", 1)[1]
    if kind == "tampered":
        token = signing.dumps({"u": alice.pk + 1, "c": ["general"]}, salt="x")
    elif kind == "expired":
        token = _Signed100DaysAgo(salt=links._SALT).sign_object({"u": alice.pk, "c": ["general"]})
    else:
        token = "not-a-token"
    response = Client().post(f"/email/unsubscribe/{token}/")
    assert response.status_code == 400
    assert b"Nothing was changed" in response.content
    assert (b"expired" in response.content) == (kind == "expired")
    assert not CategoryPreference.objects.filter(user=alice).exists()


def test_a_refused_recipient_fails_visibly_and_a_temporary_error_is_retried(alice, bob, smtp):
    alice.email = f"alice@{REFUSED_DOMAIN}"
    alice.save()
    bounced = missed(alice)
    run_pass()
    row = NotificationEmail.objects.get(notification=bounced)
    assert row.state == EmailState.FAILED and "550" in row.last_error

    smtp.refuse_data = True
    later = missed(bob)
    tally = run_pass()
    row = NotificationEmail.objects.get(notification=later)
    assert (tally.retried, row.state, row.attempts) == (1, EmailState.PENDING, 1)
    assert row.due_at > timezone.now() and "451" in row.last_error

    smtp.refuse_data = False
    NotificationEmail.objects.filter(pk=row.pk).update(due_at=timezone.now())
    run_pass()
    assert [m["To"] for m in smtp.wait_for(1)] == ["bob@example.com"]
    assert NotificationEmail.objects.get(pk=row.pk).attempts == 2


def test_an_smtp_server_that_is_down_is_retried_then_fails_visibly(alice, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens
    n = missed(alice)
    for attempt in range(1, claims.MAX_ATTEMPTS + 1):
        NotificationEmail.objects.filter(notification=n).update(due_at=timezone.now())
        assert run_pass().retried == 1
        row = NotificationEmail.objects.get(notification=n)
        assert row.attempts == attempt and "Connection refused" in row.last_error
    assert row.state == EmailState.FAILED


def test_quiet_hours_postpone_the_email_to_their_end(alice, smtp):
    now = timezone.now()
    start, end = (now - timedelta(hours=1)).time(), (now + timedelta(hours=1)).time()
    NotificationSettings.objects.create(user=alice, quiet_start=start, quiet_end=end)
    n = missed(alice)
    run_pass()
    assert smtp.messages() == []
    row = NotificationEmail.objects.get(notification=n)
    assert row.state == EmailState.PENDING
    assert timedelta(minutes=55) < row.due_at - now < timedelta(minutes=65)


def test_paused_email_sends_nothing(alice, smtp):
    NotificationSettings.objects.create(user=alice, pause_email=True)
    missed(alice)
    assert run_pass().skipped == {"email paused": 1}
    assert smtp.messages() == []


def test_two_claims_never_take_the_same_row_and_a_dead_workers_claim_resumes(alice, bob):
    for user in (alice, bob, alice, bob):
        missed(user)
    from notifications.emails import scan

    scan.scan_batch(now=timezone.now())
    now = timezone.now()
    due = NotificationEmail.objects.filter(due_at__lte=now)
    first, ids_a = claims.claim(due, now=now, limit=3)
    _, ids_b = claims.claim(due, now=now, limit=3)
    assert (len(ids_a), len(ids_b), set(ids_a) & set(ids_b)) == (3, 1, set())
    claims.start_sending(token=first, ids=ids_a[:1])  # DATA began, then its worker died
    assert claims.recover(now=now + claims.lease() + timedelta(seconds=1)) == (3, 1)
    row = NotificationEmail.objects.get(pk=ids_a[0])
    assert row.state == EmailState.IN_DOUBT and row.last_error == claims.IN_DOUBT
    # The claimed rows it had not handed to SMTP are pending again: the next pass sends them.
    assert NotificationEmail.objects.filter(state=EmailState.PENDING).count() == 3


def test_the_command_rejects_a_bad_interval():
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="--every must be a positive"):
        call_command("send_notification_emails", "--every", "0")


def test_the_admin_lists_failed_emails_with_why_and_sends_them_again(alice, bob, smtp):
    alice.email = f"alice@{REFUSED_DOMAIN}"
    alice.save()
    missed(alice)
    run_pass()
    row = NotificationEmail.objects.get()
    staff = Client()
    bob.is_staff = bob.is_superuser = True
    bob.save()
    staff.force_login(bob)
    listing = staff.get("/admin/notifications/notificationemail/?state__exact=failed")
    assert listing.status_code == 200 and f"email for notification {row.notification_id}" in (
        listing.content.decode()
    )
    assert (
        "550"
        in staff.get(f"/admin/notifications/notificationemail/{row.pk}/change/").content.decode()
    )

    alice.email = "alice@example.com"
    alice.save()
    staff.post(
        "/admin/notifications/notificationemail/",
        {"action": "retry_now", "_selected_action": [row.pk]},
    )
    row.refresh_from_db()
    assert (row.state, row.attempts) == (EmailState.PENDING, 0)
    run_pass()
    assert [m["To"] for m in smtp.wait_for(1)] == ["alice@example.com"]
