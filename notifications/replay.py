"""Replay sources for the per-user channels: the notifications and read-change tables."""

from __future__ import annotations

import json

from django_eventstream.event import Event

from notifications import selectors
from notifications.models import Notification, ReadChange


class NotificationReplay:
    """`user-<id>`: every notification of the user, in id order, as `event: notification`."""

    def current_id(self, channel: str, key: int | None) -> int:
        return selectors.latest_notification_id(user_id=key)

    def events_after(self, channel: str, key: int | None, last_id: int, limit: int) -> list[Event]:
        rows = list(
            Notification.objects.filter(recipient_id=key, id__gt=last_id).order_by("id")[:limit]
        )
        if not rows:
            return []
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
                json.dumps({"ids": change.notification_ids, "unread": unread}),
                id=change.pk,
            )
            for change in rows
        ]
