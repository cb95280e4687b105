"""Read the activity feed; plain data out."""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from feeds.models import Activity

MAX_PAGE = 100


def activity_payload(activity: Activity) -> dict[str, Any]:
    """The wire format of `event: activity` and of the feed API."""
    return {
        "id": activity.pk,
        "verb": activity.verb,
        "actor": activity.actor.get_username() if activity.actor else None,
        "target": activity.target,
        "url": activity.url,
        "created_at": activity.created_at.isoformat(),
    }


def activity_list(*, before: int | None = None, limit: int = 30) -> dict[str, Any]:
    """A page of the feed, newest first, with the cursor of the next (older) page."""
    qs = Activity.objects.select_related("actor")
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "results": [activity_payload(a) for a in rows],
        "next": rows[-1].pk if has_more else None,
    }


def activities_after(*, last_id: int, limit: int) -> list[Activity]:
    return list(
        Activity.objects.select_related("actor").filter(id__gt=last_id).order_by("id")[:limit]
    )


def latest_activity_id() -> int:
    return Activity.objects.aggregate(m=Max("id"))["m"] or 0
