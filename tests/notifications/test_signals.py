"""What the model signals publish, on the real database (the e2e tests cover delivery)."""

import pytest

from notifications.models import Notification, ReadChange
from notifications.services import notification_mark_all_read, notification_mark_read

pytestmark = pytest.mark.django_db


def test_deleting_a_user_publishes_no_read_change_for_their_cascaded_notifications(
    alice, django_capture_on_commit_callbacks
):
    Notification.objects.create(recipient=alice, title="unread")
    with django_capture_on_commit_callbacks(execute=True):
        alice.delete()
    assert not ReadChange.objects.exists()
    assert not Notification.objects.exists()


def test_the_read_paths_record_one_change_each_as_before(alice, django_capture_on_commit_callbacks):
    a, _ = (Notification.objects.create(recipient=alice, title=f"n{i}") for i in range(2))
    with django_capture_on_commit_callbacks(execute=True):
        notification_mark_read(user=alice, notification_id=a.pk)
        notification_mark_all_read(user=alice)
    assert ReadChange.objects.count() == 2


def test_deleting_read_notifications_publishes_nothing(alice, django_capture_on_commit_callbacks):
    n = Notification.objects.create(recipient=alice, title="seen")
    notification_mark_read(user=alice, notification_id=n.pk)
    with django_capture_on_commit_callbacks(execute=True):
        Notification.objects.filter(recipient=alice).delete()
    assert ReadChange.objects.count() == 1  # the mark-read only


def test_a_save_that_leaves_read_at_alone_publishes_nothing(
    alice, django_capture_on_commit_callbacks
):
    n = Notification.objects.create(recipient=alice, title="old")
    with django_capture_on_commit_callbacks(execute=True):
        n.title = "new"
        n.save()
        n.save(update_fields=["title"])
    assert not ReadChange.objects.exists()
