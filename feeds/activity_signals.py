"""Wire models whose changes are feed-worthy to the activity service."""

from typing import Any

from django.db.models.signals import post_delete, post_save

from feeds import activity
from feeds.models import Room
from notifications.signals import announcement_published


def _on_room_saved(sender: Any, instance: Room, created: bool, **kw: Any) -> None:
    activity.activity_room_saved(room=instance, created=created)


def _on_room_deleted(sender: Any, instance: Room, **kw: Any) -> None:
    activity.activity_room_removed(room=instance)


def _on_announcement_published(sender: Any, announcement: Any, **kw: Any) -> None:
    activity.activity_announcement_published(announcement=announcement)


def connect() -> None:
    post_save.connect(_on_room_saved, sender=Room, dispatch_uid="feeds.activity.room-saved")
    post_delete.connect(_on_room_deleted, sender=Room, dispatch_uid="feeds.activity.room-deleted")
    announcement_published.connect(
        _on_announcement_published, dispatch_uid="feeds.activity.announced"
    )
