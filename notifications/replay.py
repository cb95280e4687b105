"""Replay sources: notifications, read changes and announcements, from their own tables."""

from __future__ import annotations

import json
from datetime import datetime

from django.db.models import Max, QuerySet
from django.utils import timezone
from django_eventstream.event import Event
from django_eventstream.storage import EventDoesNotExist

from notifications import selectors
from notifications.models import (
    Announcement,
    Audience,
    DeletedAnnouncement,
    Notification,
    ReadChange,
)

# A client further behind than this gets `stream-reset` and reloads its inbox from the
# API instead of a replay of thousands of toasts.
REPLAY_MAX = 1000


class NotificationReplay:
    """`user-<id>`: every notification of the user, in id order, as `event: notification`."""

    def current_id(self, channel: str, key: int | None) -> int:
        return selectors.latest_notification_id(user_id=key)

    def events_after(self, channel: str, key: int | None, last_id: int, limit: int) -> list[Event]:
        missed = Notification.objects.filter(recipient_id=key, id__gt=last_id)
        rows = list(missed.order_by("id")[:limit])
        if not rows:
            return []
        if len(rows) == limit and missed.count() > REPLAY_MAX:
            current = self.current_id(channel, key)
            raise EventDoesNotExist(f"more than {REPLAY_MAX} events missed on {channel}", current)
        # Replayed events carry today's count, so whatever order they arrive in,
        # the badge ends on the true number.
        unread = selectors.unread_count(user_id=key)
        return [
            Event(
                channel,
                "notification",
                json.dumps(selectors.notification_payload(n, unread=unread)),
                id=n.pk,
            )
            for n in rows
        ]


class ReadChangeReplay:
    """`user-<id>-read`: each mark-read / mark-all-read, as `event: read`."""

    def current_id(self, channel: str, key: int | None) -> int:
        return selectors.latest_read_change_id(user_id=key)

    def events_after(self, channel: str, key: int | None, last_id: int, limit: int) -> list[Event]:
        rows = list(ReadChange.objects.filter(user_id=key, id__gt=last_id).order_by("id")[:limit])
        if not rows:
            return []
        unread = selectors.unread_count(user_id=key)
        return [
            Event(
                channel,
                "read",
                json.dumps(selectors.read_change_payload(change, unread=unread)),
                id=change.pk,
            )
            for change in rows
        ]


class AnnouncementReplay:
    """`announcements` (to everyone) and `group-<id>`: published announcements in publish order.

    The event id is the announcement's place in the publish sequence. One expired by
    "Expire now" took a new place there and is replayed as `announcement-expired`; one
    that expired at its expires_at is replayed the same way (pages also time it out), and
    so is a deleted one, at the place its DeletedAnnouncement row keeps.
    """

    def _published(self, channel: str, key: int | None) -> QuerySet[Announcement]:
        return _on_channel(Announcement.objects.filter(sequence__isnull=False), key)

    def _deleted(self, channel: str, key: int | None) -> QuerySet[DeletedAnnouncement]:
        return _on_channel(DeletedAnnouncement.objects.all(), key)

    def current_id(self, channel: str, key: int | None) -> int:
        return max(
            self._published(channel, key).aggregate(m=Max("sequence"))["m"] or 0,
            self._deleted(channel, key).aggregate(m=Max("sequence"))["m"] or 0,
        )

    def events_after(self, channel: str, key: int | None, last_id: int, limit: int) -> list[Event]:
        now = timezone.now()
        rows = self._published(channel, key).filter(sequence__gt=last_id)
        events = [
            Event(channel, *_announcement_event(a, now), id=a.sequence)
            for a in rows.order_by("sequence")[:limit]
        ]
        deleted = self._deleted(channel, key).filter(sequence__gt=last_id)
        events += [
            Event(
                channel,
                "announcement-expired",
                json.dumps({"id": d.announcement_id}),
                id=d.sequence,
            )
            for d in deleted.order_by("sequence")[:limit]
        ]
        return sorted(events, key=lambda event: event.id)[:limit]


def _on_channel(qs: QuerySet, key: int | None) -> QuerySet:
    """`announcements` (key None) carries those to everyone; `group-<key>` that group's."""
    if key is None:
        return qs.filter(audience=Audience.EVERYONE)
    return qs.filter(audience=Audience.GROUPS, groups=key)


def _announcement_event(announcement: Announcement, now: datetime) -> tuple[str, str]:
    if announcement.expires_at and announcement.expires_at <= now:
        return "announcement-expired", json.dumps(
            selectors.announcement_expired_payload(announcement)
        )
    return "announcement", json.dumps(selectors.announcement_payload(announcement))
