"""Replay sources: notifications, read changes and announcements, from their own tables."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db.models import Max, Model, QuerySet
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


class _PerUserReplay:
    """A channel per user, replayed from a table with a user column, each event carrying the
    user's unread count: many channels are answered in a few queries (current ids in one,
    the unread counts of everyone with something to replay in one)."""

    model: type[Model]
    user_field: str
    event: str

    def current_id(self, channel: str, key: int | None) -> int:
        return self.current_ids([(channel, key)])[0]

    def current_ids(self, channels: list[tuple[str, int | None]]) -> list[int]:
        keys = {key for _, key in channels}
        rows = (
            self.model.objects.filter(**{f"{self.user_field}__in": keys})
            .values(self.user_field)
            .annotate(m=Max("id"))
            .values_list(self.user_field, "m")
        )
        latest = dict(rows)
        return [latest.get(key, 0) for _, key in channels]

    def events_after(self, channel: str, key: int | None, last_id: int, limit: int) -> list[Event]:
        [(events, reset_to)] = self.events_after_many([(channel, key, last_id, limit)])
        if reset_to is not None:
            raise EventDoesNotExist(f"more than {REPLAY_MAX} events missed on {channel}", reset_to)
        return events

    def events_after_many(
        self, reads: list[tuple[str, int | None, int, int]]
    ) -> list[tuple[list[Event], int | None]]:
        found = [self._rows_after(key, last_id, limit) for _, key, last_id, limit in reads]
        # Replayed events carry today's count, so whatever order they arrive in, the badge
        # ends on the true number.
        counts = self._counts({read[1] for read, rows in zip(reads, found, strict=True) if rows})
        out: list[tuple[list[Event], int | None]] = []
        for (channel, key, _, _), rows in zip(reads, found, strict=True):
            if rows is None:
                out.append(([], self.current_id(channel, key)))
                continue
            now = counts.get(key, selectors.NO_COUNTS)
            out.append(
                ([Event(channel, self._event(r), self._data(r, now), id=r.pk) for r in rows], None)
            )
        return out

    def _rows_after(self, key: int | None, last_id: int, limit: int) -> list[Model] | None:
        """The rows after last_id, or None if there are too many to replay."""
        after = self.model.objects.filter(**{f"{self.user_field}_id": key, "id__gt": last_id})
        rows = list(after.order_by("id")[:limit])
        if len(rows) == limit and after.count() > REPLAY_MAX:
            return None
        return rows

    def _counts(self, user_ids: set[int]) -> Mapping[int, Mapping[str, int]]:
        """The counts each user's replayed events carry, in one query."""
        raise NotImplementedError

    def _event(self, row: Any) -> str:
        return self.event

    def _data(self, row: Any, counts: Mapping[str, int]) -> str:
        raise NotImplementedError


class NotificationReplay(_PerUserReplay):
    """`user-<id>`: every notification of the user, in id order, as `event: notification`."""

    model, user_field, event = Notification, "recipient", "notification"

    def _counts(self, user_ids: set[int]) -> Mapping[int, Mapping[str, int]]:
        # As published live (events.py): no `newest`, the event's id says it.
        counts = selectors.badge_counts(user_ids=user_ids)
        return {pk: {"unread": unread, "unseen": unseen} for pk, (unread, unseen) in counts.items()}

    def _data(self, row: Any, counts: Mapping[str, int]) -> str:
        return json.dumps(
            selectors.notification_payload(row, unread=counts["unread"], unseen=counts["unseen"])
        )


class ReadChangeReplay(_PerUserReplay):
    """`user-<id>-read`: each inbox change (mark read, mark all read, seen, archived, ...),
    as the event its action names (`event: read` for the read ones)."""

    model, user_field, event = ReadChange, "user", "read"

    def _counts(self, user_ids: set[int]) -> Mapping[int, Mapping[str, int]]:
        return selectors.inbox_counts(user_ids=user_ids)

    def _event(self, row: Any) -> str:
        return row.action

    def _data(self, row: Any, counts: Mapping[str, int]) -> str:
        return json.dumps(selectors.read_change_payload(row, **counts))


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

    def current_ids(self, channels: list[tuple[str, int | None]]) -> list[int]:
        # A batch holds one channel (`announcements`) at many positions: read it once.
        latest = {pair: self.current_id(*pair) for pair in dict.fromkeys(channels)}
        return [latest[pair] for pair in channels]

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
