"""Read notifications; plain data out, so async code never touches a lazy queryset."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Max

from notifications.models import Notification, ReadChange

MAX_PAGE = 100


def unread_count(*, user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id, read_at__isnull=True).count()


def notification_payload(notification: Notification, *, unread: int) -> dict[str, Any]:
    """The public wire format of `event: notification` and of the JSON API."""
    return {
        "id": notification.pk,
        "title": notification.title,
        "body": notification.body,
        "level": notification.level,
        "url": notification.url,
        "created_at": notification.created_at.isoformat(),
        "unread": unread,
    }


def notification_list(
    *, user_id: int, unread: bool = False, before: int | None = None, limit: int = 20
) -> dict[str, Any]:
    """A page of the inbox, newest first, with the cursor of the next page."""
    qs = Notification.objects.filter(recipient_id=user_id)
    if unread:
        qs = qs.filter(read_at__isnull=True)
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    count = unread_count(user_id=user_id)
    return {
        "results": [_item(n) for n in rows],
        "unread": count,
        "next": rows[-1].pk if has_more else None,
    }


def _item(notification: Notification) -> dict[str, Any]:
    item = notification_payload(notification, unread=0)
    del item["unread"]
    item["read"] = notification.read_at is not None
    return item


def latest_notification_id(*, user_id: int) -> int:
    return Notification.objects.filter(recipient_id=user_id).aggregate(m=Max("id"))["m"] or 0


def latest_read_change_id(*, user_id: int) -> int:
    return ReadChange.objects.filter(user_id=user_id).aggregate(m=Max("id"))["m"] or 0


def unread_counts(*, user_ids: set[int]) -> dict[int, int]:
    """Unread counts of many users in one query (bulk publishing)."""
    if len(user_ids) == 1:
        (user_id,) = user_ids
        return {user_id: unread_count(user_id=user_id)}
    rows = (
        Notification.objects.filter(recipient_id__in=user_ids, read_at__isnull=True)
        .values("recipient_id")
        .annotate(n=Count("id"))
    )
    return {row["recipient_id"]: row["n"] for row in rows}
