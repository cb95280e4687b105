"""Migration 0005: rows written before kinds existed get the kind they were sent as."""

from io import StringIO

import pytest
from django.core.management import call_command

from tests.support.migrations import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("notifications", "0004_deleted_announcements")]
AFTER = [("notifications", "0005_notification_kinds")]


def test_existing_rows_get_sensible_kinds(alice, back_to_latest):
    old = migrate(BEFORE)
    Notification = old.get_model("notifications", "Notification")
    ContentType = old.get_model("contenttypes", "ContentType")
    message_type = ContentType.objects.get_or_create(app_label="feeds", model="message")[0]
    Notification.objects.create(recipient_id=alice.pk, title="plain")
    Notification.objects.create(recipient_id=alice.pk, title="bulk", send_key="send-1")
    Notification.objects.create(
        recipient_id=alice.pk, title="mention", target_type=message_type, target_id="7"
    )
    new = migrate(AFTER)
    kinds = dict(
        new.get_model("notifications", "Notification").objects.values_list("title", "kind")
    )
    assert kinds == {"plain": "general", "bulk": "announcement", "mention": "room.mention"}


def test_the_models_need_no_migration_beyond_those_committed():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())
