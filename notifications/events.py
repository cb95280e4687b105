"""What gets published to live streams, always after the transaction commits.

Every event goes to its channel's group on the Pulse channel layer (realtime.sse.publish_events
→ realtime.layer): SSE streams on any process get it, and so does any consumer that joined
the group (`user-42`, `announcements`, `group-7`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from django.db import transaction

from notifications import selectors
from notifications.channels import group_channel, read_channel, user_channel
from notifications.models import Announcement, Audience, Notification, ReadChange
from realtime import sse
from realtime.wire import SESSION_ENDED

# The public channel of announcements to everyone (see notifications.channels).
EVERYONE_CHANNEL = "announcements"


def notify_user_on_commit(*, notification: Notification) -> None:
    """Push `event: notification` to the recipient once the row is committed."""
    transaction.on_commit(lambda: _publish_notifications([notification]))


def notify_users_on_commit(*, notifications: Sequence[Notification]) -> None:
    """The bulk variant: one unread count query and one Redis round trip per batch."""
    batch = list(notifications)
    transaction.on_commit(lambda: _publish_notifications(batch))


def read_changed_on_commit(*, change: ReadChange) -> None:
    """Push `event: read` (or the change's other action: `unread`, `seen`, `archived`,
    `unarchived`, `deleted`) so the user's other tabs update their badge and list."""
    transaction.on_commit(lambda: _publish_read_change(change))


def streams_close_on_commit(
    *, user_id: int, session_key: str | None, reason: str = SESSION_ENDED
) -> None:
    """End the user's live streams on every process (one session's, or all if None)."""
    transaction.on_commit(lambda: sse.kick(user_id=user_id, session_key=session_key, reason=reason))


def announcement_published_on_commit(*, announcement: Announcement) -> None:
    """Push `event: announcement` once per audience channel, whatever the audience size."""
    data = selectors.announcement_payload(announcement)
    _announcement_event_on_commit(announcement, "announcement", data)


def announcement_expired_on_commit(*, announcement: Announcement) -> None:
    """Push `event: announcement-expired` once per audience channel: pages drop it."""
    data = selectors.announcement_expired_payload(announcement)
    _announcement_event_on_commit(announcement, "announcement-expired", data)


def announcement_deleted_on_commit(*, announcement: Announcement, sequence: int) -> None:
    """Push `event: announcement-expired` at the deletion's place in the sequence."""
    data = selectors.announcement_expired_payload(announcement)
    _announcement_event_on_commit(announcement, "announcement-expired", data, sequence)


def _announcement_event_on_commit(
    announcement: Announcement,
    event_type: str,
    payload: dict[str, Any],
    sequence: int | None = None,
) -> None:
    data = json.dumps(payload)
    event_id = announcement.sequence if sequence is None else sequence
    messages = [
        (channel, event_type, data, event_id) for channel in _announcement_channels(announcement)
    ]
    transaction.on_commit(lambda: sse.publish_events(messages))


def _announcement_channels(announcement: Announcement) -> list[str]:
    if announcement.audience == Audience.EVERYONE:
        return [EVERYONE_CHANNEL]
    group_ids = announcement.groups.order_by("id").values_list("id", flat=True)
    return [group_channel(group_id) for group_id in group_ids]


def _publish_notifications(notifications: list[Notification]) -> None:
    counts = selectors.badge_counts(user_ids={n.recipient_id for n in notifications})
    # Each event names the recipient's notification before it: a stream that never got
    # that one (its publish failed) reads it from the database first (realtime.sse).
    # Read after commit, it is exact: inserts for one recipient commit in id order
    # (notifications.storage.replay_log_lock).
    prevs = selectors.notification_previous_ids(ids=[n.pk for n in notifications])
    sse.publish_events(
        (user_channel(n.recipient_id), "notification", data, n.pk, prevs.get(n.pk, 0))
        for n, data in zip(notifications, _payloads_json(notifications, counts), strict=True)
    )


def _payloads_json(
    notifications: list[Notification], counts: dict[int, tuple[int, int]]
) -> Iterator[str]:
    """`json.dumps(selectors.notification_payload(...))` of each, byte for byte.

    The content that consecutive notifications share (all of a bulk batch) is encoded once,
    then framed by the id and unread count as json.dumps writes them.
    """
    content: dict[str, Any] | None = None
    encoded = ""
    for n in notifications:
        if (current := selectors.notification_content(n)) != content:
            content, encoded = current, json.dumps(current)[1:-1]
        unread, unseen = counts.get(n.recipient_id, (0, 0))
        yield f'{{"id": {n.pk:d}, {encoded}, "unread": {unread:d}, "unseen": {unseen:d}}}'


def _publish_read_change(change: ReadChange) -> None:
    counts = selectors.badge_count(user_id=change.user_id)
    data = json.dumps(selectors.read_change_payload(change, **counts))
    # No `prev` yet: read changes of one user may commit out of id order on PostgreSQL,
    # and a stream would drop the late one as already sent (realtime.sse).
    sse.publish_events([(read_channel(change.user_id), change.action, data, change.pk)])
