"""Find new notifications that their recipients want by email, and schedule one row each.

The worker walks the notifications table by id from a cursor (EmailScanCursor): each pass
reads only rows it has not seen, an index range whatever the table's size, and makes a
NotificationEmail row only for recipients whose preference for the category is an email
mode. Rows newer than SCAN_LAG are left for the next pass: ids of different recipients
may commit out of order, and a row committed late behind the cursor would be missed.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import QuerySet

from notifications import kinds, preferences
from notifications.batch_sql import id_set
from notifications.emails.schedule import due_at
from notifications.models import (
    CategoryPreference,
    EmailMode,
    EmailScanCursor,
    Notification,
    NotificationEmail,
    NotificationSettings,
)

logger = logging.getLogger(__name__)

SCAN_BATCH = 2000
# Scans of one batch that may meet a concurrent delete before one is left to fail.
RACE_RETRIES = 3
SCAN_LAG = timedelta(seconds=30)


def scan_batch(*, now: datetime) -> int:
    """Look at the next batch of notifications after the cursor; return how many it read."""
    for _ in range(RACE_RETRIES):
        try:
            return _scan_batch(now=now)
        except IntegrityError:
            # A notification read here was deleted (a collapse, the user) before this
            # commit: its email row's foreign key failed. Read the batch again without it.
            logger.info("a scanned notification was deleted meanwhile; scanning again")
    return _scan_batch(now=now)


def _scan_batch(*, now: datetime) -> int:
    with transaction.atomic():
        cursor, _ = EmailScanCursor.objects.select_for_update().get_or_create(pk=1)
        rows = list(after_cursor(cursor.last_notification_id))
        # Only a prefix of settled rows: never step over one that may still be followed by
        # an earlier id committing late (see the module docstring).
        settled = now - SCAN_LAG
        rows = rows[: next((i for i, r in enumerate(rows) if r["created_at"] > settled), None)]
        if not rows:
            return 0
        NotificationEmail.objects.bulk_create(_email_rows(rows), ignore_conflicts=True)
        EmailScanCursor.objects.filter(pk=1).update(last_notification_id=rows[-1]["id"])
    return len(rows)


def after_cursor(last_id: int) -> QuerySet[Notification, dict[str, Any]]:
    """The next batch of notifications after the cursor: a primary key range."""
    return (
        Notification.objects.filter(id__gt=last_id)
        .order_by("id")
        .values("id", "recipient_id", "kind", "created_at")[:SCAN_BATCH]
    )


def _email_rows(rows: list[dict[str, Any]]) -> list[NotificationEmail]:
    user_ids = {r["recipient_id"] for r in rows}
    modes = email_modes(user_ids=user_ids)
    zones = dict(
        NotificationSettings.objects.filter(user_id__in=id_set(user_ids)).values_list(
            "user_id", "time_zone"
        )
    )
    out = []
    for r in rows:
        try:
            kind = kinds.get(r["kind"])
        except kinds.UnknownKind:
            continue  # a kind no longer registered: nobody chose email for it
        mode = modes.get((r["recipient_id"], kind.category)) or _default_mode(kind.category)
        if mode == EmailMode.OFF:
            continue
        when = due_at(
            mode=mode,
            created_at=r["created_at"],
            delay=kind.email_delay,
            time_zone=zones.get(r["recipient_id"], "UTC"),
        )
        out.append(
            NotificationEmail(
                notification_id=r["id"], user_id=r["recipient_id"], mode=mode, due_at=when
            )
        )
    return out


def email_modes(*, user_ids: Collection[int]) -> dict[tuple[int, str], str]:
    """The email mode each of these users chose per category (absent: the default)."""
    prefs = CategoryPreference.objects.filter(user_id__in=id_set(user_ids))
    return {(u, c): e for u, c, e in prefs.values_list("user_id", "category", "email")}


def _default_mode(category: str) -> str:
    return str(preferences.category_default(category)["email"])
