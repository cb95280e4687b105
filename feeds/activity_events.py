"""What the activity feed publishes: `event: activity` on the public `activity` channel."""

from __future__ import annotations

import json

from django.db import transaction

from feeds.activity_selectors import activity_payload
from feeds.models import Activity
from notifications import relay

# Public: every signed-in user may read it (notifications.channels.PUBLIC_CHANNELS).
ACTIVITY_CHANNEL = "activity"


def activity_added_on_commit(*, activity: Activity) -> None:
    """Push the new item to every feed once its row is committed."""
    data = json.dumps(activity_payload(activity))
    transaction.on_commit(
        lambda: relay.publish([(ACTIVITY_CHANNEL, "activity", data, activity.pk)])
    )
