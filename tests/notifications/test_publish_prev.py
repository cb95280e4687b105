"""What the publishers send to the channel layer: each personal event names the one before."""

import json
import time

import pytest

from notifications import selectors
from notifications.models import Notification
from notifications.services import (
    notification_create,
    notification_mark_read,
    notifications_publish_bulk,
    notifications_send_batch,
)
from realtime import sse
from realtime.sse import STREAMS
from realtime.wire import PUBLISHED_AT, event_message
from tests.support.streams import live_connection

pytestmark = pytest.mark.django_db

PUBLIC_KEYS = {"id", "title", "body", "kind", "level", "url", "created_at", "unread", "unseen"}


@pytest.fixture
def published(monkeypatch, django_capture_on_commit_callbacks):
    """Run each callable with its on-commit publishes executed; return what they published."""
    sent: list[tuple] = []
    monkeypatch.setattr(sse, "publish_events", lambda events: sent.extend(events) or True)

    def run(action):
        with django_capture_on_commit_callbacks(execute=True):
            result = action()
        return result

    run.sent = sent
    return run


def test_each_notification_names_the_recipients_one_before_it(alice, bob, charlie, published):
    first = published(lambda: notification_create(recipient=alice, title="1"))
    bobs = published(lambda: notification_create(recipient=bob, title="bob's"))
    second = published(lambda: notification_create(recipient=alice, title="2"))
    batch = published(
        lambda: notifications_send_batch(
            recipient_ids=[alice.pk, bob.pk, charlie.pk], title="all", send_key="k1"
        )
    )
    prev = {(channel, event_id): rest[0] for channel, _t, _d, event_id, *rest in published.sent}
    by_user = {n.recipient_id: n.pk for n in batch}
    assert prev == {
        (f"user-{alice.pk}", first.pk): 0,
        (f"user-{bob.pk}", bobs.pk): 0,
        (f"user-{alice.pk}", second.pk): first.pk,
        (f"user-{alice.pk}", by_user[alice.pk]): second.pk,
        (f"user-{bob.pk}", by_user[bob.pk]): bobs.pk,
        (f"user-{charlie.pk}", by_user[charlie.pk]): 0,
    }
    # `prev` rides in the envelope, not in the public JSON
    assert all(set(json.loads(data)) == PUBLIC_KEYS for _c, _t, data, *_ in published.sent)


def test_published_json_is_the_payload_byte_for_byte(alice, bob, published):
    awkward = {
        "title": 'Say "hi" \u2713\n</script>',
        "body": "\u00e9\x00\U0001f600\\",
        "url": "/a?b=c&d",
    }
    published(
        lambda: notifications_send_batch(
            recipient_ids=[alice.pk, bob.pk], level="warning", send_key="k2", **awkward
        )
    )
    rows = Notification.objects.bulk_create(
        Notification(recipient=user, title=title) for user, title in [(alice, "a"), (bob, "b")]
    )
    published(lambda: notifications_publish_bulk(notifications=[*rows, rows[0]]))
    assert len(published.sent) == 5
    for _channel, _type, data, event_id, *_ in published.sent:
        counts = json.loads(data)
        row = Notification.objects.get(pk=event_id)
        assert data == json.dumps(
            selectors.notification_payload(row, unread=counts["unread"], unseen=counts["unseen"])
        )
    assert [json.loads(m[2])["unread"] for m in published.sent] == [1, 1, 2, 2, 2]


def test_read_events_carry_no_prev_until_read_changes_commit_in_order(alice, published):
    a = notification_create(recipient=alice, title="a")
    published(lambda: notification_mark_read(user=alice, notification_id=a.pk))
    (read,) = [m for m in published.sent if m[0] == f"user-{alice.pk}-read"]
    assert len(read) == 4


def test_a_batchs_previous_ids_are_one_query(alice, bob, django_assert_num_queries):
    rows = [notification_create(recipient=u, title="x") for u in (alice, bob, alice, bob)]
    with django_assert_num_queries(1):
        prevs = selectors.notification_previous_ids(ids=[n.pk for n in rows])
    assert prevs == {rows[0].pk: 0, rows[1].pk: 0, rows[2].pk: rows[0].pk, rows[3].pk: rows[1].pk}


async def test_the_message_carries_prev_to_the_streams_and_leaves_it_out_when_unknown():
    assert "prev" not in event_message("announcements", "announcement", "{}", 3)
    message = event_message("user-7", "notification", '{"id": 12}', 12, 11)
    assert abs(message.pop(PUBLISHED_AT) - time.time()) < 60  # for the latency metric
    assert message == {
        "type": "pulse.event",
        "channel": "user-7",
        "event": "notification",
        "data": '{"id": 12}',
        "id": 12,
        "prev": 11,
    }
    conn = live_connection(**{"user-7": 10})
    await STREAMS.deliver((conn,), [message])
    assert conn.wants_more and conn.take() == b""  # 11 is read from storage first
