"""What gets published to live streams, always after the transaction commits."""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import transaction

from notifications import relay, selectors
from notifications.channels import read_channel, user_channel
from notifications.models import Notification, ReadChange


def notify_user_on_commit(*, notification: Notification) -> None:
    """Push `event: notification` to the recipient once the row is committed."""
    transaction.on_commit(lambda: _publish_notifications([notification]))


def notify_users_on_commit(*, notifications: Sequence[Notification]) -> None:
    """The bulk variant: one unread count query and one Redis round trip per batch."""
    batch = list(notifications)
    transaction.on_commit(lambda: _publish_notifications(batch))


def read_changed_on_commit(*, change: ReadChange) -> None:
    """Push `event: read` so the user's other tabs update their badge and list."""
    transaction.on_commit(lambda: _publish_read_change(change))


def streams_close_on_commit(*, user_id: int, session_key: str | None) -> None:
    """End the user's live streams on every process (one session's, or all if None)."""
    message = {"kick": {"user": user_id, "session": session_key}}
    transaction.on_commit(lambda: relay.publish_control(message))


def _publish_notifications(notifications: list[Notification]) -> None:
    counts = selectors.unread_counts(user_ids={n.recipient_id for n in notifications})
    relay.publish(
        (
            user_channel(n.recipient_id),
            "notification",
            json.dumps(selectors.notification_payload(n, unread=counts.get(n.recipient_id, 0))),
            n.pk,
        )
        for n in notifications
    )


def _publish_read_change(change: ReadChange) -> None:
    unread = selectors.unread_count(user_id=change.user_id)
    data = json.dumps({"ids": change.notification_ids, "unread": unread})
    relay.publish([(read_channel(change.user_id), "read", data, change.pk)])
