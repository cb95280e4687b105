"""What the activity feed publishes on the public `activity` channel.

`event: activity` adds an item; `event: activity-removed` `{"ids": [...]}` takes items
out of pages that show them. Both carry their Activity id, so replay keeps their order.
"""

from __future__ import annotations

import json

from django.db import transaction

from feeds.activity_selectors import activity_payload, activity_removed_payload
from feeds.models import Activity
from realtime import sse

# Public: every signed-in user may read it (notifications.channels.PUBLIC_CHANNELS).
ACTIVITY_CHANNEL = "activity"
ADDED = "activity"
REMOVED = "activity-removed"


def activity_event(activity: Activity) -> tuple[str, str]:
    """The SSE event type and JSON data of one Activity row (an item or a tombstone)."""
    if activity.verb == Activity.REMOVED:
        return REMOVED, json.dumps(activity_removed_payload(activity))
    return ADDED, json.dumps(activity_payload(activity))


def activity_published_on_commit(*, activity: Activity) -> None:
    """Push an item or a tombstone to every feed once its row is committed."""
    event_type, data = activity_event(activity)
    transaction.on_commit(
        lambda: sse.publish_events([(ACTIVITY_CHANNEL, event_type, data, activity.pk)])
    )
