"""Decide what is worth showing in the site-wide activity feed, and record it.

One place: signals only point here. Only public things are recorded, because every
signed-in user reads the feed: private rooms and announcements to chosen groups never are.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.urls import reverse

from feeds import activity_events
from feeds.models import Activity, Room
from notifications.models import Announcement, Audience

ROOM_CREATED = "created the room"
ROOM_OPENED = "opened the room"
ANNOUNCED = "announced"
JOINED = "joined Pulse"

ROOM_VERBS = (ROOM_CREATED, ROOM_OPENED)


def activity_record(
    *, verb: str, actor: Any = None, target: str = "", url: str = "", announcement: Any = None
) -> Activity:
    """Store one feed item and push it on the `activity` channel after commit."""
    activity = Activity.objects.create(
        verb=verb, actor=actor, target=target, url=url, announcement=announcement
    )
    activity_events.activity_published_on_commit(activity=activity)
    return activity


def activity_room_saved(*, room: Room, created: bool, was_private: bool | None) -> Activity | None:
    """Feed a public room's creation or opening; take a room out of the feed if it turns private.

    `was_private` is the stored privacy before this save (None when unknown or new).
    """
    if room.is_private:
        if not created:
            activity_room_removed(room=room)
        return None
    if created:
        verb = ROOM_CREATED
    elif was_private:
        verb = ROOM_OPENED
    else:
        return None
    # Who opened it is not known at the model level: the creator stands in.
    return activity_record(verb=verb, actor=room.created_by, target=room.title, url=_room_url(room))


def activity_room_removed(*, room: Room) -> Activity | None:
    """Delete a room's items (it was deleted or made private) and tell open feeds to drop them.

    The items are deleted, not hidden, so nothing of a now-private room can be served
    again; the tombstone keeps only their ids.
    """
    return _remove(Activity.objects.filter(verb__in=ROOM_VERBS, url=_room_url(room)))


def activity_announcement_removed(*, announcement: Announcement) -> Activity | None:
    """Take a deleted announcement's item out of the feed, on open pages too."""
    return _remove(Activity.objects.filter(verb=ANNOUNCED, announcement=announcement))


def _remove(items: QuerySet[Activity]) -> Activity | None:
    ids = sorted(items.values_list("id", flat=True))
    if not ids:
        return None
    Activity.objects.filter(id__in=ids).delete()
    tombstone = Activity.objects.create(verb=Activity.REMOVED, removed_ids=ids)
    activity_events.activity_published_on_commit(activity=tombstone)
    return tombstone


def activity_announcement_published(*, announcement: Announcement) -> Activity | None:
    """Feed announcements to everyone; those to chosen groups are not public."""
    if announcement.audience != Audience.EVERYONE:
        return None
    return activity_record(
        verb=ANNOUNCED,
        actor=announcement.published_by,
        target=announcement.title,
        url=reverse("notifications:inbox"),
        announcement=announcement,
    )


def activity_user_created(*, user: Any) -> Activity | None:
    """Feed a new active account; inactive ones (not yet confirmed, disabled) are not news."""
    if not user.is_active:
        return None
    return activity_record(verb=JOINED, actor=user)


def _room_url(room: Room) -> str:
    return reverse("chat:room", kwargs={"slug": room.slug})
