"""Claiming email rows so that concurrent workers never take the same one, and crashes resume.

A claim is one short transaction: pick due pending rows (`FOR UPDATE SKIP LOCKED` on
PostgreSQL, so workers pick different rows without waiting; SQLite serialises writers and
ignores it) and mark them `claimed` with a random token and a lease
(NOTIFICATION_EMAIL_LEASE_SECONDS), conditionally on still being pending. A row is `sending`
only from just before its SMTP `DATA` until its outcome is recorded. After a lease runs out
(its worker died), `recover` returns claimed rows to pending, for another worker to send,
and marks sending rows `in_doubt`: such an email may have gone out, and sending it again
could make two, so only staff resend it (the admin's retry action).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet

from notifications.models import EmailState, NotificationEmail

MAX_ATTEMPTS = 5
IN_DOUBT = "the worker stopped during SMTP DATA: it may have been delivered, so it is not sent "
IN_DOUBT += "again unless staff retry it"


def lease() -> timedelta:
    """How long a claim holds its rows before other workers may take them back."""
    return timedelta(seconds=settings.NOTIFICATION_EMAIL_LEASE_SECONDS)


def claim(
    pending: QuerySet[NotificationEmail], *, now: datetime, limit: int
) -> tuple[str, list[int]]:
    """Claim up to `limit` rows of `pending` (already filtered to due ones); return token, ids."""
    token = uuid.uuid4().hex
    with transaction.atomic():
        ids = list(due_ids(pending, limit=limit).select_for_update(skip_locked=True))
        if not ids:
            return token, []
        NotificationEmail.objects.filter(id__in=ids, state=EmailState.PENDING).update(
            state=EmailState.CLAIMED, claim=token, claimed_until=now + lease()
        )
    return token, list(
        NotificationEmail.objects.filter(id__in=ids, claim=token).values_list("id", flat=True)
    )


def due_ids(pending: QuerySet[NotificationEmail], *, limit: int) -> QuerySet[Any]:
    """The ids of the first `limit` pending rows by due time: an index range (notif_email_due)."""
    return (
        pending.filter(state=EmailState.PENDING)
        .order_by("due_at")  # the index's order: the LIMIT stops the scan early
        .values_list("id", flat=True)[:limit]
    )


def start_sending(*, token: str, ids: Collection[int]) -> set[int]:
    """Mark claimed rows `sending` right before their SMTP `DATA`; return those marked
    (a row missing was taken back after the lease ran out, or went with its notification)."""
    rows = NotificationEmail.objects.filter(id__in=list(ids), claim=token)
    rows.filter(state=EmailState.CLAIMED).update(
        state=EmailState.SENDING, attempts=F("attempts") + 1
    )
    return set(rows.filter(state=EmailState.SENDING).values_list("id", flat=True))


def finish(*, token: str, ids: Collection[int], state: str, now: datetime, error: str = "") -> None:
    """Record the outcome of rows this claim holds: sent, skipped (with why) or failed."""
    if not ids:
        return
    NotificationEmail.objects.filter(id__in=list(ids), claim=token).update(
        state=state,
        claim="",
        claimed_until=None,
        sent_at=now if state == EmailState.SENT else None,
        last_error=error,
    )


def retry_later(*, token: str, ids: Collection[int], now: datetime, error: str) -> None:
    """After an SMTP error: pending again with a growing delay, or failed after MAX_ATTEMPTS."""
    rows = NotificationEmail.objects.filter(id__in=list(ids), claim=token)
    # Failed before DATA (no server, refused sender): an attempt too, or it would never fail.
    rows.filter(state=EmailState.CLAIMED).update(attempts=F("attempts") + 1)
    rows.filter(attempts__gte=MAX_ATTEMPTS).update(
        state=EmailState.FAILED, claim="", claimed_until=None, last_error=error
    )
    for attempts in set(rows.values_list("attempts", flat=True)):
        backoff = timedelta(seconds=min(3600, 60 * 2 ** max(attempts - 1, 0)))
        rows.filter(attempts=attempts).update(
            state=EmailState.PENDING,
            claim="",
            claimed_until=None,
            due_at=now + backoff,
            last_error=error,
        )


def postpone(*, token: str, ids: Collection[int], until: datetime) -> None:
    """Give rows back as pending, due later (quiet hours)."""
    NotificationEmail.objects.filter(id__in=list(ids), claim=token).update(
        state=EmailState.PENDING, claim="", claimed_until=None, due_at=until
    )


def recover(*, now: datetime) -> tuple[int, int]:
    """Take back the claims of workers whose lease ran out; return (resumed, in doubt)."""
    stale = NotificationEmail.objects.filter(
        state__in=[EmailState.CLAIMED, EmailState.SENDING], claimed_until__lt=now
    )
    resumed = stale.filter(state=EmailState.CLAIMED).update(
        state=EmailState.PENDING, claim="", claimed_until=None
    )
    doubtful = stale.filter(state=EmailState.SENDING).update(
        state=EmailState.IN_DOUBT, claim="", claimed_until=None, last_error=IN_DOUBT
    )
    return resumed, doubtful


def unsent_for(notification_id: int) -> dict[str, Any] | None:
    """The email row of a notification that is about to be replaced (a collapse), if no
    worker has handed it to SMTP yet; locked, so no worker starts it meanwhile."""
    return (
        NotificationEmail.objects.select_for_update()
        .filter(notification_id=notification_id, state__in=[EmailState.PENDING, EmailState.CLAIMED])
        .values("user_id", "mode", "due_at", "attempts", "last_error")
        .first()
    )


def carry_over(row: dict[str, Any] | None, *, notification_id: int) -> None:
    """Give a replaced notification's unsent email row to the row replacing it, pending at
    the same due time: one email for both, and later collapses do not put it off."""
    if row is not None:
        NotificationEmail.objects.create(notification_id=notification_id, **row)
