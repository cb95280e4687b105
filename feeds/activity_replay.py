"""Replay of the `activity` channel (`Last-Event-ID`) from the Activity table."""

from __future__ import annotations

import json

from django_eventstream.event import Event

from feeds import activity_selectors


class ActivityReplay:
    """`activity`: every feed item after an id, oldest first, as `event: activity`."""

    def current_id(self, channel: str, key: int | None) -> int:
        return activity_selectors.latest_activity_id()

    def events_after(self, channel: str, key: int | None, last_id: int, limit: int) -> list[Event]:
        return [
            Event(channel, "activity", json.dumps(activity_selectors.activity_payload(a)), id=a.pk)
            for a in activity_selectors.activities_after(last_id=last_id, limit=limit)
        ]
