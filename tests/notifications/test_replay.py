import json

import pytest
from django_eventstream.storage import EventDoesNotExist

from notifications.services import (
    notification_archive,
    notification_create,
    notification_mark_read,
)
from notifications.storage import ReplayStorage, stream_position
from tests.support.published import published

pytestmark = pytest.mark.django_db


def test_replay_returns_exactly_the_notifications_after_an_id_in_order(alice, bob):
    storage = ReplayStorage()
    channel = f"user-{alice.pk}"
    first = notification_create(recipient=alice, title="1")
    notification_create(recipient=bob, title="bob's")
    later = [notification_create(recipient=alice, title=str(i)) for i in range(2, 5)]
    events = storage.get_events(channel, first.pk, limit=100)
    assert [e.id for e in events] == [n.pk for n in later]
    assert [json.loads(e.data)["title"] for e in events] == ["2", "3", "4"]
    assert {json.loads(e.data)["unread"] for e in events} == {4}
    assert all(e.type == "notification" for e in events)


def test_replay_pages_by_limit(alice):
    ns = [notification_create(recipient=alice, title=str(i)) for i in range(5)]
    events = ReplayStorage().get_events(f"user-{alice.pk}", 0, limit=2)
    assert [e.id for e in events] == [ns[0].pk, ns[1].pk]


def test_an_id_beyond_the_newest_asks_the_client_to_reset(alice):
    n = notification_create(recipient=alice, title="1")
    with pytest.raises(EventDoesNotExist) as err:
        ReplayStorage().get_events(f"user-{alice.pk}", n.pk + 1000)
    assert err.value.current_id == n.pk


def test_read_changes_replay_with_the_current_unread_count(alice):
    a = notification_create(recipient=alice, title="a")
    notification_mark_read(user=alice, notification_id=a.pk)
    b = notification_create(recipient=alice, title="b")
    (event,) = ReplayStorage().get_events(f"user-{alice.pk}-read", 0)
    assert event.type == "read"
    # as published live, with the counts of now: `newest` is the one made since
    assert json.loads(event.data) == {"ids": [a.pk], "unread": 1, "unseen": 1, "newest": b.pk}


def test_a_replayed_inbox_change_is_the_live_one_when_nothing_changed_since(
    alice, pubsub, django_capture_on_commit_callbacks, django_assert_num_queries
):
    a = notification_create(recipient=alice, title="a")
    notification_create(recipient=alice, title="b")
    published(pubsub)
    with django_capture_on_commit_callbacks(execute=True):
        notification_archive(user=alice, notification_id=a.pk)
    live = [(m["event"], json.loads(m["data"])) for m in published(pubsub)]
    with django_assert_num_queries(3):  # where the channel stands, the rows, the counts
        events = ReplayStorage().get_events(f"user-{alice.pk}-read", 0)
    assert [(e.type, json.loads(e.data)) for e in events] == live
    assert [event for event, _ in live] == ["read", "archived"]


def test_stream_position_is_the_newest_id_per_channel(alice):
    n = notification_create(recipient=alice, title="a")
    assert stream_position([f"user-{alice.pk}", f"user-{alice.pk}-read", "nothing-here"]) == {
        f"user-{alice.pk}": n.pk,
        f"user-{alice.pk}-read": 0,
        "nothing-here": 0,
    }


def test_replay_query_count_does_not_grow_with_events(alice, django_assert_num_queries):
    for i in range(20):
        notification_create(recipient=alice, title=str(i))
    with django_assert_num_queries(3):  # where the channel stands, the rows, the unread count
        ReplayStorage().get_events(f"user-{alice.pk}", 0)


def test_a_batch_of_streams_costs_queries_only_for_the_ones_with_something_to_replay(
    django_assert_num_queries,
):
    from django.contrib.auth.models import User

    from notifications.channels import channels_for_user
    from realtime.sse import read_replay

    users = [User.objects.create(username=f"u{i}") for i in range(40)]
    for user in users:
        notification_create(recipient=user, title="seen")
    behind = users[:5]
    for user in behind:
        notification_create(recipient=user, title="missed")
    requests = []
    for user in users:
        channels = tuple(channels_for_user(user))
        position = stream_position(list(channels))
        if user in behind:
            position[f"user-{user.pk}"] -= 1
        requests.append((channels, position))
    # Where each source's channels stand, for the whole batch (notifications, read changes,
    # and announcements: published and deleted ones), then per stream that is behind its
    # rows, and one unread count query for all of them.
    with django_assert_num_queries(4 + len(behind) + 1):
        reads = read_replay(requests)
    missed = [[json.loads(e.tail.split(b"data: ")[1]) for e in r.events] for r in reads]
    assert [m[0]["title"] for m in missed[:5]] == ["missed"] * 5
    assert missed[5:] == [[]] * 35


def test_a_client_too_far_behind_is_told_to_reset(alice):
    from notifications.models import Notification
    from notifications.replay import REPLAY_MAX

    Notification.objects.bulk_create(
        Notification(recipient=alice, title=str(i)) for i in range(REPLAY_MAX + 1)
    )
    newest = Notification.objects.filter(recipient=alice).latest("id").pk
    with pytest.raises(EventDoesNotExist) as err:
        ReplayStorage().get_events(f"user-{alice.pk}", 0, limit=100)
    assert err.value.current_id == newest
    # one short of the window still replays
    events = ReplayStorage().get_events(f"user-{alice.pk}", newest - REPLAY_MAX, limit=100)
    assert len(events) == 100
