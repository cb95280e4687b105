"""Announcements: publishing once at a constant cost, unread state, the API, replay."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from notifications import selectors
from notifications.models import Announcement, AnnouncementRead, Notification, ReadChange
from notifications.services import (
    announcement_create,
    announcement_expire,
    announcement_mark_read,
    announcement_publish,
    notification_create,
    notification_mark_all_read,
)
from notifications.storage import ReplayStorage
from tests.support.factories import make_user
from tests.support.http import csrf_post
from tests.support.published import published

pytestmark = pytest.mark.django_db


@pytest.fixture
def ops(bob) -> Group:
    group = Group.objects.create(name="ops")
    bob.groups.add(group)
    return group


def announce(*, groups=(), by=None, **kwargs) -> Announcement:
    announcement = announcement_create(
        title=kwargs.pop("title", "Maintenance"), groups=groups, **kwargs
    )
    assert announcement_publish(announcement=announcement, by=by)
    return announcement


def many_users(n: int) -> None:
    User = get_user_model()
    User.objects.bulk_create(User(username=f"user{i}", password="!") for i in range(n))


def test_publishing_to_everyone_is_one_row_and_one_event_whatever_the_audience(
    alice,
    pubsub,
    django_capture_on_commit_callbacks,
):
    small = announcement_create(title="To a few")
    with CaptureQueriesContext(connection) as few_queries:
        announcement_publish(announcement=small, by=alice)
    many_users(500)
    big = announcement_create(title="To many", body="Tonight 22:00", level="warning")
    published(pubsub)
    with (
        CaptureQueriesContext(connection) as many_queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        assert announcement_publish(announcement=big, by=alice)
    assert len(many_queries) == len(few_queries)
    (message,) = [m for m in published(pubsub) if m["event"] == "announcement"]
    assert (message["channel"], message["event"], message["id"]) == (
        "announcements",
        "announcement",
        big.sequence,
    )
    big.refresh_from_db()
    assert json.loads(message["data"]) == {
        "id": big.pk,
        "title": "To many",
        "body": "Tonight 22:00",
        "kind": "announcement",
        "level": "warning",
        "created_at": big.published_at.isoformat(),
        "expires_at": None,
    }
    assert Announcement.objects.count() == 2
    assert not AnnouncementRead.objects.exists()
    assert not Notification.objects.exists()


def test_a_group_announcement_is_one_event_per_group_channel(
    bob,
    ops,
    pubsub,
    django_capture_on_commit_callbacks,
):
    dev = Group.objects.create(name="dev")
    with django_capture_on_commit_callbacks(execute=True):
        announce(groups=[ops, dev])
    assert sorted(m["channel"] for m in published(pubsub)) == sorted(
        [f"group-{ops.pk}", f"group-{dev.pk}"]
    )


def test_it_is_published_only_after_commit(alice, pubsub, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        announce()
    assert published(pubsub) == []
    for callback in callbacks:
        callback()
    assert [m["event"] for m in published(pubsub)] == ["announcement", "activity"]


def test_an_announcement_is_published_once_and_the_publish_is_recorded(alice, bob):
    announcement = announcement_create(title="Once")
    assert announcement_publish(announcement=announcement, by=alice)
    first = Announcement.objects.get()
    assert not announcement_publish(announcement=Announcement.objects.get(), by=bob)
    again = Announcement.objects.get()
    assert (again.published_by, again.published_at, again.sequence) == (
        alice, first.published_at, first.sequence
    )  # fmt: skip


def test_publish_order_not_creation_order_gives_the_stream_ids(alice):
    scheduled_earlier = announcement_create(title="Created first")
    later = announce(title="Created second, published first")
    assert announcement_publish(announcement=scheduled_earlier)
    scheduled_earlier.refresh_from_db()
    assert scheduled_earlier.sequence > later.sequence


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": ""}, "title must not be empty"),
        ({"title": "x", "level": "panic"}, "level must be one of"),
        ({"title": "x", "body": "b" * 5001}, "body is longer than 5000"),
    ],
)
def test_invalid_announcements_are_refused(kwargs, message):
    with pytest.raises(ValidationError, match=message):
        announcement_create(**kwargs)
    assert not Announcement.objects.exists()


def test_it_cannot_expire_before_it_is_published():
    now = timezone.now()
    with pytest.raises(ValidationError, match="expire before it is published"):
        announcement_create(title="x", publish_at=now, expires_at=now - timedelta(minutes=1))


def test_an_expired_announcement_is_not_published(alice):
    announcement = announcement_create(title="Too late", expires_at=timezone.now() - timedelta(1))
    with pytest.raises(ValidationError, match="already expired"):
        announcement_publish(announcement=announcement, by=alice)
    assert not Announcement.objects.get().is_published


def test_the_unread_count_counts_the_announcements_each_user_is_shown(alice, bob, charlie, ops):
    notification_create(recipient=alice, title="personal")
    announce(title="everyone")
    announce(title="ops only", groups=[ops])
    announcement_create(title="a draft")
    expired = announce(title="expired")
    announcement_expire(announcement=expired)
    assert selectors.unread_count(user_id=alice.pk) == 2  # personal + everyone
    assert selectors.unread_count(user_id=bob.pk) == 2  # everyone + ops
    assert selectors.unread_count(user_id=charlie.pk) == 1
    assert selectors.unread_counts(user_ids={alice.pk, bob.pk, charlie.pk}) == {
        alice.pk: 2, bob.pk: 2, charlie.pk: 1
    }  # fmt: skip


def test_a_user_in_two_audience_groups_counts_it_once(bob, ops):
    dev = Group.objects.create(name="dev")
    bob.groups.add(dev)
    announce(groups=[ops, dev])
    assert selectors.unread_count(user_id=bob.pk) == 1


def test_unread_count_is_one_query(alice, ops, django_assert_num_queries):
    announce()
    announce(groups=[ops])
    with django_assert_num_queries(1):
        selectors.unread_count(user_id=alice.pk)
    with django_assert_num_queries(1):
        selectors.unread_counts(user_ids={alice.pk, 123, 456})


def test_users_who_join_later_see_an_unexpired_announcement(alice):
    announce(title="Welcome week")
    newcomer = make_user("newcomer")
    assert [a["title"] for a in selectors.announcement_list(user_id=newcomer.pk)] == [
        "Welcome week"
    ]


def test_reading_an_announcement_stores_one_row_and_tells_the_users_tabs(
    alice,
    bob,
    pubsub,
    django_capture_on_commit_callbacks,
):
    a = announce()
    published(pubsub)
    with django_capture_on_commit_callbacks(execute=True):
        assert announcement_mark_read(user=alice, announcement_id=a.pk) == {
            "unread": 0,
            "unseen": 0,
            "newest": 0,  # no notifications
        }
        announcement_mark_read(user=alice, announcement_id=a.pk)  # again: no change
    assert AnnouncementRead.objects.filter(user=alice).count() == 1
    (message,) = published(pubsub)
    assert message["channel"] == f"user-{alice.pk}-read"
    assert json.loads(message["data"]) == {
        "ids": [], "announcement_ids": [a.pk], "unread": 0, "unseen": 0, "newest": 0
    }  # fmt: skip
    assert selectors.unread_count(user_id=bob.pk) == 1


def test_an_announcement_for_a_group_cannot_be_read_by_outsiders(alice, ops):
    a = announce(groups=[ops])
    with pytest.raises(Announcement.DoesNotExist):
        announcement_mark_read(user=alice, announcement_id=a.pk)
    assert not AnnouncementRead.objects.exists()


def test_mark_all_read_covers_announcements(alice, bob):
    n = notification_create(recipient=alice, title="n")
    a = announce()
    assert notification_mark_all_read(user=alice) == {"unread": 0, "unseen": 0, "newest": n.pk}
    change = ReadChange.objects.get(user=alice)
    assert (change.notification_ids, change.announcement_ids) == ([n.pk], [a.pk])
    assert selectors.unread_count(user_id=bob.pk) == 1


# ---------------------------------------------------------------- API and inbox


def test_api_lists_the_users_announcements_with_read_state(alice, alice_client, ops):
    old = announce(title="old")
    new = announce(title="new", level="success")
    announce(title="not for alice", groups=[ops])
    announcement_mark_read(user=alice, announcement_id=old.pk)
    body = alice_client.get("/api/announcements/").json()
    assert [(r["id"], r["read"]) for r in body["results"]] == [(new.pk, False), (old.pk, True)]
    assert body["unread"] == 1
    assert body["results"][0]["level"] == "success"
    unread = alice_client.get("/api/announcements/?unread=1").json()["results"]
    assert [r["id"] for r in unread] == [new.pk]
    assert alice_client.get("/api/notifications/unread-count/").json() == {
        "unread": 1,
        "unseen": 1,
        "newest": 0,
    }


def test_api_marks_an_announcement_read(alice_client, ops):
    a = announce()
    response = csrf_post(alice_client, f"/api/announcements/{a.pk}/read/")
    assert response.json() == {"unread": 0, "unseen": 0, "newest": 0}
    hidden = announce(groups=[ops])
    response = csrf_post(alice_client, f"/api/announcements/{hidden.pk}/read/")
    assert response.status_code == 404
    assert response.json() == {"error": "no such announcement"}


def test_api_needs_a_login_and_checks_its_parameter(client, alice_client):
    assert client.get("/api/announcements/").status_code == 403
    response = alice_client.get("/api/announcements/?unread=maybe")
    assert (response.status_code, response.json()) == (400, {"error": "unread must be 1 or 0"})


def test_the_inbox_pins_the_users_announcements(alice_client):
    announce(title="Planned outage", body="Saturday 02:00 UTC")
    page = alice_client.get("/notifications/").content.decode()
    assert "Planned outage" in page
    assert 'id="inbox-announcements"' in page
    assert 'data-unread="1"' in page


# ---------------------------------------------------------------- replay


def test_replay_serves_announcements_and_expiries_in_publish_order(alice, ops):
    storage = ReplayStorage()
    first = announce(title="first")
    group_only = announce(title="ops", groups=[ops])
    gone = announce(title="gone")
    published_at = gone.sequence
    assert announcement_expire(announcement=gone)
    assert gone.sequence > published_at  # expiring takes a new place in the sequence
    last = announce(title="last")
    events = storage.get_events("announcements", 0)
    assert [(e.type, json.loads(e.data)["id"], e.id) for e in events] == [
        ("announcement", first.pk, first.sequence),
        ("announcement-expired", gone.pk, gone.sequence),
        ("announcement", last.pk, last.sequence),
    ]
    assert json.loads(events[1].data) == {"id": gone.pk}
    assert storage.get_current_id("announcements") == last.sequence
    (group_event,) = storage.get_events(f"group-{ops.pk}", 0)
    assert json.loads(group_event.data)["id"] == group_only.pk
    assert storage.get_events("announcements", last.sequence) == []


def test_expire_now_tells_open_pages_with_one_event_per_audience_channel(
    alice, ops, pubsub, django_capture_on_commit_callbacks
):
    shown = announce(title="to ops", groups=[ops])
    draft = announcement_create(title="never published")
    published(pubsub)
    with django_capture_on_commit_callbacks(execute=True):
        assert announcement_expire(announcement=shown)
        assert announcement_expire(announcement=draft)  # no page has it: no event
        assert not announcement_expire(announcement=shown)  # already gone
    (message,) = published(pubsub)
    assert (message["channel"], message["event"], message["id"]) == (
        f"group-{ops.pk}",
        "announcement-expired",
        shown.sequence,
    )
    assert json.loads(message["data"]) == {"id": shown.pk}
    assert selectors.unread_count(user_id=ops.user_set.get().pk) == 0


# ---------------------------------------------------------------- scheduled publishing


def test_a_scheduled_announcement_is_published_once_however_often_the_command_runs(
    alice,
    pubsub,
    django_capture_on_commit_callbacks,
):
    now = timezone.now()
    due = announcement_create(title="Due", publish_at=now - timedelta(seconds=5), created_by=alice)
    announcement_create(title="Tomorrow", publish_at=now + timedelta(days=1))
    announcement_create(title="Draft")
    announcement_create(
        title="Missed", publish_at=now - timedelta(hours=2), expires_at=now - timedelta(hours=1)
    )
    published(pubsub)
    out = []
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            buffer = StringIO()
            call_command("publish_due_announcements", stdout=buffer)
            out.append(buffer.getvalue())
    assert out == [f"published announcement {due.pk}: Due\n", ""]
    assert [m["channel"] for m in published(pubsub)] == ["announcements", "activity"]
    assert list(Announcement.objects.filter(published_at__isnull=False)) == [due]
    due.refresh_from_db()
    assert due.published_by == alice  # the scheduler acts for whoever scheduled it


def test_the_command_refuses_a_bad_interval():
    with pytest.raises(CommandError, match="--every must be a positive"):
        call_command("publish_due_announcements", "--every", "0")
