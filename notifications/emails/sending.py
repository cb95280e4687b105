"""Send the due emails: one per missed notification, one digest per user and period."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage, get_connection
from django.core.mail.backends.base import BaseEmailBackend

from notifications.batch_sql import id_set
from notifications.emails import claims, messages, scan
from notifications.emails.schedule import quiet_until
from notifications.models import EmailMode, EmailState, NotificationEmail, NotificationSettings
from realtime.connection_caps import last_live_ms

logger = logging.getLogger(__name__)

SEND_BATCH = 200
DIGEST_USERS = 500
DIGEST_MODES = (EmailMode.HOURLY, EmailMode.DAILY)
_FIELDS = ("id", "title", "body", "kind", "url", "created_at", "read_at")


@dataclass
class Tally:
    sent: int = 0
    digests: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    failed: int = 0

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + count


def send_due_missed(*, now: datetime, tally: Tally, limit: int = SEND_BATCH) -> int:
    """Claim and send one batch of due missed-notification emails; return how many claimed."""
    pending = NotificationEmail.objects.filter(mode=EmailMode.IMMEDIATE, due_at__lte=now)
    token, ids = claims.claim(pending, now=now, limit=limit)
    if not ids:
        return 0
    rows = list(
        NotificationEmail.objects.filter(id__in=ids).values("id", "user_id", "notification_id")
    )
    context = _Recipients({r["user_id"] for r in rows}, now)
    notes = _notifications([r["notification_id"] for r in rows])
    with get_connection() as connection:
        for row in rows:
            n = notes.get(row["notification_id"])
            reason = context.skip_reason(row["user_id"], n, EmailMode.IMMEDIATE)
            if reason or n is None:
                claims.finish(
                    token=token, ids=[row["id"]], state=EmailState.SKIPPED, now=now, error=reason
                )
                tally.skip(reason)
            elif until := context.quiet(row["user_id"]):
                claims.postpone(token=token, ids=[row["id"]], until=until)
            else:
                email = messages.missed_email(
                    to=context.address(row["user_id"]), user_id=row["user_id"], notification=n
                )
                if _send(connection, email, token=token, ids=[row["id"]], now=now, tally=tally):
                    tally.sent += 1
    return len(ids)


def send_due_digests(*, now: datetime, tally: Tally, chunk: int = DIGEST_USERS) -> None:
    """One digest per user with due digest rows, users taken `chunk` at a time by id."""
    after = 0
    due = NotificationEmail.objects.filter(
        state=EmailState.PENDING, mode__in=DIGEST_MODES, due_at__lte=now
    )
    while user_ids := list(
        due.filter(user_id__gt=after)
        .order_by("user_id")
        .values_list("user_id", flat=True)
        .distinct()[:chunk]
    ):
        after = user_ids[-1]
        _send_digests(user_ids, now=now, tally=tally)


def _send_digests(user_ids: list[int], *, now: datetime, tally: Tally) -> None:
    pending = NotificationEmail.objects.filter(
        user_id__in=id_set(user_ids), mode__in=DIGEST_MODES, due_at__lte=now
    )
    token, ids = claims.claim(pending, now=now, limit=len(user_ids) * 10_000)
    by_user: dict[int, list[dict[str, Any]]] = {}
    for row in NotificationEmail.objects.filter(id__in=id_set(ids)).values(
        "id", "user_id", "mode", "notification_id"
    ):
        by_user.setdefault(row["user_id"], []).append(row)
    context = _Recipients(set(by_user), now)
    with get_connection() as connection:
        for user_id, rows in by_user.items():
            notes = _notifications([r["notification_id"] for r in rows])
            _send_digest(
                connection, context, user_id, rows, notes, token=token, now=now, tally=tally
            )


def _send_digest(
    connection: BaseEmailBackend,
    context: _Recipients,
    user_id: int,
    rows: list[dict[str, Any]],
    notes: dict[int, dict[str, Any]],
    *,
    token: str,
    now: datetime,
    tally: Tally,
) -> None:
    send, skipped = [], 0
    for row in rows:
        if reason := context.skip_reason(user_id, notes.get(row["notification_id"]), row["mode"]):
            claims.finish(
                token=token, ids=[row["id"]], state=EmailState.SKIPPED, now=now, error=reason
            )
            tally.skip(reason)
            skipped += 1
        else:
            send.append(row)
    if not send:
        return
    ids = [r["id"] for r in send]
    if until := context.quiet(user_id):
        claims.postpone(token=token, ids=ids, until=until)
        return
    ordered = sorted((notes[r["notification_id"]] for r in send), key=lambda n: -n["id"])
    email = messages.digest_email(
        to=context.address(user_id),
        user_id=user_id,
        mode=send[0]["mode"],
        notifications=ordered,
        key=f"{user_id}-{min(ids)}",
    )
    if _send(connection, email, token=token, ids=ids, now=now, tally=tally):
        tally.digests += 1


def _send(
    connection: BaseEmailBackend,
    email: EmailMessage,
    *,
    token: str,
    ids: list[int],
    now: datetime,
    tally: Tally,
) -> bool:
    """One SMTP transaction between `sending` and `sent`; errors retry or fail the rows."""
    if not claims.start_sending(token=token, ids=ids):
        return False  # the lease ran out and another worker took these back
    try:
        connection.send_messages([email])
    except smtplib.SMTPRecipientsRefused as exc:
        claims.finish(token=token, ids=ids, state=EmailState.FAILED, now=now, error=_why(exc))
        tally.failed += 1
        return False
    except (smtplib.SMTPException, OSError) as exc:
        logger.warning("email to %s failed, will retry: %s", email.to, exc)
        connection.close()  # reopened by the next send
        claims.retry_later(token=token, ids=ids, now=now, error=_why(exc))
        tally.retried += 1
        return False
    claims.finish(token=token, ids=ids, state=EmailState.SENT, now=now)
    return True


def _why(exc: Exception) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]


def _notifications(ids: Iterable[int]) -> dict[int, dict[str, Any]]:
    from notifications.models import Notification

    return {
        n["id"]: n for n in Notification.objects.filter(id__in=id_set(list(ids))).values(*_FIELDS)
    }


class _Recipients:
    """What decides, per user, whether and where an email goes: read in one query each."""

    def __init__(self, user_ids: set[int], now: datetime) -> None:
        self.now = now
        users = get_user_model().objects.filter(pk__in=id_set(user_ids))
        self.users = {u["pk"]: u for u in users.values("pk", "email", "is_active")}
        self.settings = {
            s.user_id: s for s in NotificationSettings.objects.filter(user_id__in=id_set(user_ids))
        }
        self.modes = scan.email_modes(user_ids=user_ids)
        self.live = last_live_ms(user_ids=user_ids)

    def address(self, user_id: int) -> str:
        return str(self.users[user_id]["email"])

    def skip_reason(self, user_id: int, n: dict[str, Any] | None, mode: str) -> str:
        """Why this notification is not emailed after all, or "" to send it."""
        if n is None:
            return "deleted"
        user = self.users.get(user_id)
        if user is None or not user["is_active"] or not user["email"]:
            return "no email address"
        if n["read_at"] is not None:
            return "read"
        settings = self.settings.get(user_id)
        if settings is not None and settings.pause_email:
            return "email paused"
        category = messages.category_of(n["kind"])
        if self.modes.get((user_id, category), mode) == EmailMode.OFF:
            return "email turned off"
        live_ms = self.live.get(user_id)
        if (
            mode == EmailMode.IMMEDIATE
            and live_ms
            and live_ms >= n["created_at"].timestamp() * 1000
        ):
            return "seen live"
        return ""

    def quiet(self, user_id: int) -> datetime | None:
        settings = self.settings.get(user_id)
        return quiet_until(settings, self.now) if settings is not None else None
