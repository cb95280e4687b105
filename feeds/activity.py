"""Decide what is worth showing in the site-wide activity feed, and record it.

One place: signals only point here. Only public things are recorded, because every
signed-in user reads the feed: private rooms and announcements to chosen groups never are.
"""

from __future__ import annotations

from typing import Any

from django.urls import reverse

from feeds import activity_events
from feeds.models import Activity, Room
from notifications.models import Announcement, Audience

ROOM_CREATED = "created the room"
ANNOUNCED = "announced"


def activity_record(*, verb: str, actor: Any = None, target: str = "", url: str = "") -> Activity:
    """Store one feed item and push it on the `activity` channel after commit."""
    activity = Activity.objects.create(verb=verb, actor=actor, target=target, url=url)
    activity_events.activity_added_on_commit(activity=activity)
    return activity


def activity_room_saved(*, room: Room, created: bool) -> Activity | None:
    """Feed a public room's creation; take a room back out of the feed if it turns private."""
    if room.is_private:
        if not created:
            activity_room_removed(room=room)
        return None
    if not created:
        return None
    return activity_record(
        verb=ROOM_CREATED, actor=room.created_by, target=room.title, url=_room_url(room)
    )


def activity_room_removed(*, room: Room) -> None:
    """Delete a room's items (it was deleted or made private); open feeds keep them until reload."""
    Activity.objects.filter(verb=ROOM_CREATED, url=_room_url(room)).delete()


def activity_announcement_published(*, announcement: Announcement) -> Activity | None:
    """Feed announcements to everyone; those to chosen groups are not public."""
    if announcement.audience != Audience.EVERYONE:
        return None
    return activity_record(
        verb=ANNOUNCED,
        actor=announcement.published_by,
        target=announcement.title,
        url=reverse("notifications:inbox"),
    )


def _room_url(room: Room) -> str:
    return reverse("chat:room", kwargs={"slug": room.slug})
