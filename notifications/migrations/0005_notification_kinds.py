"""Every notification and announcement gets a kind; existing rows get the one they were sent as."""

from django.db import migrations, models

# The kinds the senders of existing rows now register (notifications.kinds, feeds.apps).
BULK_SENT = "announcement"
CHAT_MENTION = "room.mention"


def assign_kinds(apps, schema_editor):
    Notification = apps.get_model("notifications", "Notification")
    ContentType = apps.get_model("contenttypes", "ContentType")
    # send_notifications tags every row it writes with a send key: a staff message.
    Notification.objects.exclude(send_key="").update(kind=BULK_SENT)
    # The only notifications about a chat message are mentions (feeds.services).
    message_type = ContentType.objects.filter(app_label="feeds", model="message").first()
    if message_type is not None:
        Notification.objects.filter(target_type=message_type).update(kind=CHAT_MENTION)


class Migration(migrations.Migration):
    dependencies = [
        ("contenttypes", "0002_remove_content_type_name"),
        ("notifications", "0004_deleted_announcements"),
    ]

    operations = [
        migrations.AddField(
            model_name="notification",
            name="kind",
            field=models.CharField(default="general", max_length=50),
        ),
        migrations.AddField(
            model_name="announcement",
            name="kind",
            field=models.CharField(default="announcement", max_length=50),
        ),
        migrations.RunPython(assign_kinds, migrations.RunPython.noop),
    ]
