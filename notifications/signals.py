"""Wire the Notification model to its publish service."""

from typing import Any

from django.db.models.signals import post_save

from notifications.models import Notification


def _on_notification_saved(sender: Any, instance: Notification, created: bool, **kw: Any) -> None:
    if created:
        from notifications.services import notification_publish

        notification_publish(notification=instance)


def connect() -> None:
    post_save.connect(
        _on_notification_saved, sender=Notification, dispatch_uid="notifications.publish"
    )
