"""Read the activity feed; plain data out."""

from __future__ import annotations

from typing import Any

from django.db.models import Max

from feeds.models import Activity, Room

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


def activity_removed_payload(tombstone: Activity) -> dict[str, Any]:
    """The wire format of `event: activity-removed`: only ids, nothing of what was removed."""
    return {"ids": list(tombstone.removed_ids)}


def activity_list(*, before: int | None = None, limit: int = 30) -> dict[str, Any]:
    """A page of the feed, newest first, with the cursor of the next (older) page."""
    # Tombstones are stream events only; the items they name are already deleted.
    qs = Activity.objects.select_related("actor").exclude(verb=Activity.REMOVED)
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
    """Items and tombstones after an id, oldest first: the `activity` channel's replay."""
    return list(
        Activity.objects.select_related("actor").filter(id__gt=last_id).order_by("id")[:limit]
    )


def latest_activity_id() -> int:
    return Activity.objects.aggregate(m=Max("id"))["m"] or 0


def room_was_private(*, room: Room) -> bool | None:
    """The stored privacy of a room about to be saved; None for a new room."""
    if room.pk is None:
        return None
    return Room.objects.filter(pk=room.pk).values_list("is_private", flat=True).first()
