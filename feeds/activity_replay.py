"""Replay of the `activity` channel (`Last-Event-ID`) from the Activity table."""

from __future__ import annotations

from django_eventstream.event import Event

from feeds import activity_selectors
from feeds.activity_events import activity_event


class ActivityReplay:
    """`activity`: items and tombstones after an id, oldest first, as they were published."""

    def current_id(self, channel: str, key: int | None) -> int:
        return activity_selectors.latest_activity_id()

    def events_after(self, channel: str, key: int | None, last_id: int, limit: int) -> list[Event]:
        return [
            Event(channel, *activity_event(a), id=a.pk)
            for a in activity_selectors.activities_after(last_id=last_id, limit=limit)
        ]
