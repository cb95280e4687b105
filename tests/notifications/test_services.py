import json

import pytest
from django.core.exceptions import ValidationError

from notifications.models import Notification, ReadChange
from notifications.services import (
    notification_create,
    notification_mark_all_read,
    notification_mark_read,
)
from tests.support.published import published

pytestmark = pytest.mark.django_db


def test_notification_is_published_only_after_commit(
    alice, pubsub, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        n = notification_create(recipient=alice, title="Deploy finished", level="success")
    assert published(pubsub) == []  # not before commit
    for callback in callbacks:
        callback()
    (message,) = published(pubsub)
    assert message["channel"] == f"user-{alice.pk}"
    assert message["event"] == "notification"
    assert message["id"] == n.pk
    data = json.loads(message["data"])
    assert data == {
        "id": n.pk,
        "title": "Deploy finished",
        "body": "",
        "kind": "general",
        "level": "success",
        "url": "",
        "created_at": n.created_at.isoformat(),
        "unread": 1,
        "unseen": 1,
    }


def test_a_rolled_back_notification_is_never_published(
    alice, pubsub, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        notification_create(recipient=alice, title="never")
    # the test transaction rolls back: the callbacks are discarded, not run
    assert published(pubsub) == []
    assert len(callbacks) == 1


def test_saving_a_notification_anywhere_publishes_it(
    alice, pubsub, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        Notification.objects.create(recipient=alice, title="from the shell")
    (message,) = published(pubsub)
    assert json.loads(message["data"])["title"] == "from the shell"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"title": ""}, "title must not be empty"),
        ({"title": "x" * 201}, "title is longer than 200 characters"),
        ({"title": "ok", "level": "panic"}, "level must be one of"),
        ({"title": "ok", "url": "javascript:alert(1)"}, "url must be a path"),
        ({"title": "ok", "body": "b" * 5001}, "body is longer than 5000"),
    ],
)
def test_invalid_notifications_are_refused_with_a_message(alice, kwargs, message):
    with pytest.raises(ValidationError, match=message):
        notification_create(recipient=alice, **kwargs)
    assert not Notification.objects.exists()


def test_mark_read_records_a_read_change_and_returns_unread(
    alice, pubsub, django_capture_on_commit_callbacks
):
    a = notification_create(recipient=alice, title="a")
    b = notification_create(recipient=alice, title="b")
    published(pubsub)
    with django_capture_on_commit_callbacks(execute=True):
        counts = notification_mark_read(user=alice, notification_id=a.pk)
    assert counts == {"unread": 1, "unseen": 1, "newest": b.pk}
    change = ReadChange.objects.get()
    assert change.notification_ids == [a.pk]
    (message,) = published(pubsub)
    assert message["channel"] == f"user-{alice.pk}-read"
    assert json.loads(message["data"]) == {"ids": [a.pk], "unread": 1, "unseen": 1, "newest": b.pk}


def test_marking_an_already_read_notification_changes_nothing(alice):
    a = notification_create(recipient=alice, title="a")
    notification_mark_read(user=alice, notification_id=a.pk)
    notification_mark_read(user=alice, notification_id=a.pk)
    assert ReadChange.objects.count() == 1


def test_bob_cannot_mark_alices_notification(alice, bob):
    a = notification_create(recipient=alice, title="a")
    with pytest.raises(Notification.DoesNotExist):
        notification_mark_read(user=bob, notification_id=a.pk)
    a.refresh_from_db()
    assert a.read_at is None
    assert not ReadChange.objects.exists()


def test_mark_all_read_marks_only_the_users_own(alice, bob):
    ids = [notification_create(recipient=alice, title=str(i)).pk for i in range(3)]
    notification_create(recipient=bob, title="bob's")  # newer, not hers
    assert notification_mark_all_read(user=alice) == {"unread": 0, "unseen": 0, "newest": ids[-1]}
    assert ReadChange.objects.get(user=alice).notification_ids == ids
    assert Notification.objects.filter(recipient=bob, read_at__isnull=True).count() == 1


def test_a_login_timestamp_save_costs_no_credentials_lookup(alice, django_assert_num_queries):
    from django.utils import timezone

    alice.last_login = timezone.now()
    with django_assert_num_queries(1):  # the UPDATE alone
        alice.save(update_fields=["last_login"])
