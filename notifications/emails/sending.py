"""Send the due emails: one per missed notification, one digest per user and period."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.core.mail import EmailMessage

from notifications.batch_sql import id_set
from notifications.emails import claims, messages, scan
from notifications.emails.schedule import quiet_until
from notifications.emails.smtp import SmtpConnections
from notifications.models import (
    EmailMode,
    EmailState,
    InboxSeen,
    NotificationEmail,
    NotificationSettings,
)
from realtime.seen_live import last_live_ms

logger = logging.getLogger(__name__)

SEND_BATCH = 200
DIGEST_USERS = 500
# Rows one chunk of digest users claims: this many per user of it (the rest wait for the next
# pass), so a chunk holds a bounded number of ids whatever the backlog.
DIGEST_ROWS_PER_USER = 200
# Emails in flight at once, each on its own SMTP connection.
SMTP_CONNECTIONS = 4
DIGEST_MODES = (EmailMode.HOURLY, EmailMode.DAILY)
_FIELDS = ("id", "title", "body", "kind", "url", "created_at", "read_at", "archived_at")


@dataclass
class Tally:
    sent: int = 0
    digests: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    retried: int = 0
    failed: int = 0
    in_doubt: int = 0  # rows of a dead worker that was in SMTP DATA: perhaps sent

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
    outbox: list[tuple[list[int], EmailMessage]] = []
    for row in rows:
        n = notes.get(row["notification_id"])
        reason = context.skip_reason(row["user_id"], n, EmailMode.IMMEDIATE)
        if n is None or reason:
            claims.finish(
                token=token, ids=[row["id"]], state=EmailState.SKIPPED, now=now, error=reason
            )
            tally.skip(reason)
        elif until := context.quiet(row["user_id"]):
            claims.postpone(token=token, ids=[row["id"]], until=until)
        else:
            to = context.address(row["user_id"])
            email = messages.missed_email(to=to, user_id=row["user_id"], notification=n)
            outbox.append(([row["id"]], email))
    tally.sent += _deliver(outbox, token=token, now=now, tally=tally)
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
    token, ids = claims.claim(pending, now=now, limit=len(user_ids) * DIGEST_ROWS_PER_USER)
    rows = list(
        NotificationEmail.objects.filter(id__in=id_set(ids)).values(
            "id", "user_id", "mode", "notification_id"
        )
    )
    notes = _notifications([r["notification_id"] for r in rows])
    by_user: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_user.setdefault(row["user_id"], []).append(row)
    context = _Recipients(set(by_user), now)
    outbox = []
    for user_id, user_rows in by_user.items():
        if item := _digest(context, user_id, user_rows, notes, token=token, now=now, tally=tally):
            outbox.append(item)
    tally.digests += _deliver(outbox, token=token, now=now, tally=tally)


def _digest(
    context: _Recipients,
    user_id: int,
    rows: list[dict[str, Any]],
    notes: dict[int, dict[str, Any]],
    *,
    token: str,
    now: datetime,
    tally: Tally,
) -> tuple[list[int], EmailMessage] | None:
    """The user's digest and the rows it covers; None if nothing is left to send now."""
    send, skipped = [], {}
    for row in rows:
        if reason := context.skip_reason(user_id, notes.get(row["notification_id"]), row["mode"]):
            skipped.setdefault(reason, []).append(row["id"])
            tally.skip(reason)
        else:
            send.append(row)
    for reason, ids in skipped.items():
        claims.finish(token=token, ids=ids, state=EmailState.SKIPPED, now=now, error=reason)
    if not send:
        return None
    ids = [r["id"] for r in send]
    if until := context.quiet(user_id):
        claims.postpone(token=token, ids=ids, until=until)
        return None
    ordered = sorted((notes[r["notification_id"]] for r in send), key=lambda n: -n["id"])
    email = messages.digest_email(
        to=context.address(user_id),
        user_id=user_id,
        mode=send[0]["mode"],
        notifications=ordered,
        key=f"{user_id}-{min(ids)}",
    )
    return ids, email


def _deliver(
    outbox: list[tuple[list[int], EmailMessage]], *, token: str, now: datetime, tally: Tally
) -> int:
    """Send each (rows, email) of the outbox; return how many went out.

    SMTP_CONNECTIONS emails at a time, each on its own connection: an SMTP transaction is
    four round trips, mostly waiting. Rows are `sending` only from just before `DATA`, so
    a worker killed earlier leaves them claimed, for another worker after the lease.
    """
    if not outbox:
        return 0
    sent = 0
    with SmtpConnections(min(SMTP_CONNECTIONS, len(outbox))) as smtp:
        for start in range(0, len(outbox), SMTP_CONNECTIONS):
            wave = outbox[start : start + SMTP_CONNECTIONS]
            sent += _send_wave(smtp, wave, token=token, now=now, tally=tally)
    return sent


def _send_wave(
    smtp: SmtpConnections,
    wave: list[tuple[list[int], EmailMessage]],
    *,
    token: str,
    now: datetime,
    tally: Tally,
) -> int:
    """Email i of the wave on connection i: envelopes, rows `sending`, `DATA`, rows `sent`."""
    emails = [email for _, email in wave]
    refused = smtp.envelopes(emails)
    accepted = [[] if error else ids for (ids, _), error in zip(wave, refused, strict=True)]
    for (ids, email), error in zip(wave, refused, strict=True):
        if error is not None:
            _failed(error, email, token=token, ids=ids, now=now, tally=tally)
    live = claims.start_sending(token=token, ids=[i for ids in accepted for i in ids])
    go = [e if ids and set(ids) <= live else None for ids, e in zip(accepted, emails, strict=True)]
    # Rows taken back since the claim (the lease ran out, the notification went): not sent.
    smtp.abort(
        [e if ids and not g else None for ids, e, g in zip(accepted, emails, go, strict=True)]
    )
    done: list[int] = []
    sent = 0
    for (ids, email), sending, error in zip(wave, go, smtp.data(go), strict=True):
        if sending is None:
            continue
        if error is None:
            done += ids
            sent += 1
        else:
            _failed(error, email, token=token, ids=ids, now=now, tally=tally)
    claims.finish(token=token, ids=done, state=EmailState.SENT, now=now)
    return sent


def _failed(
    error: Exception,
    email: EmailMessage,
    *,
    token: str,
    ids: list[int],
    now: datetime,
    tally: Tally,
) -> None:
    """A refused recipient (a bounce) fails at once; other errors are retried later."""
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        claims.finish(token=token, ids=ids, state=EmailState.FAILED, now=now, error=_why(error))
        tally.failed += 1
    else:
        logger.warning("email to %s failed, will retry: %s", email.to, error)
        claims.retry_later(token=token, ids=ids, now=now, error=_why(error))
        tally.retried += 1


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
        self.seen_through = dict(
            InboxSeen.objects.filter(user_id__in=id_set(user_ids)).values_list(
                "user_id", "notification_id"
            )
        )

    def address(self, user_id: int) -> str:
        return str(self.users[user_id]["email"])

    def skip_reason(self, user_id: int, n: dict[str, Any] | None, mode: str) -> str:
        """Why this notification is not emailed after all, or "" to send it."""
        if n is None:
            return "deleted"
        user = self.users.get(user_id)
        if user is None or not user["is_active"] or not user["email"]:
            return "no email address"
        # Archived, read, or seen in the bell: not missed, alone or in a digest (a deleted
        # one has no row left). Archiving reads; "mark unread" leaves the seen mark.
        if n["archived_at"] is not None:
            return "archived"
        if n["read_at"] is not None:
            return "read"
        if n["id"] <= self.seen_through.get(user_id, 0):
            return "seen"
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
