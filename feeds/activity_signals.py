"""Wire models whose changes are feed-worthy to the activity service."""

from typing import Any

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_save

from feeds import activity, activity_selectors
from feeds.models import Room
from notifications.hooks import announcement_deleted, announcement_published


def _on_room_saving(sender: Any, instance: Room, raw: bool = False, **kw: Any) -> None:
    # post_save cannot tell a private room made public from any other edit: remember.
    if not raw:
        instance._feed_was_private = activity_selectors.room_was_private(room=instance)


def _on_room_saved(sender: Any, instance: Room, created: bool, **kw: Any) -> None:
    was_private = instance.__dict__.pop("_feed_was_private", None)
    activity.activity_room_saved(room=instance, created=created, was_private=was_private)


def _on_room_deleted(sender: Any, instance: Room, **kw: Any) -> None:
    activity.activity_room_removed(room=instance)


def _on_announcement_published(sender: Any, announcement: Any, **kw: Any) -> None:
    activity.activity_announcement_published(announcement=announcement)


def _on_announcement_deleted(sender: Any, announcement: Any, **kw: Any) -> None:
    activity.activity_announcement_removed(announcement=announcement)


def _on_user_saved(sender: Any, instance: Any, created: bool, raw: bool = False, **kw: Any) -> None:
    if created and not raw:
        activity.activity_user_created(user=instance)


def connect() -> None:
    post_save.connect(_on_room_saved, sender=Room, dispatch_uid="feeds.activity.room-saved")
    pre_save.connect(_on_room_saving, sender=Room, dispatch_uid="feeds.activity.room-saving")
    post_delete.connect(_on_room_deleted, sender=Room, dispatch_uid="feeds.activity.room-deleted")
    announcement_published.connect(
        _on_announcement_published, dispatch_uid="feeds.activity.announced"
    )
    announcement_deleted.connect(
        _on_announcement_deleted, dispatch_uid="feeds.activity.announcement-deleted"
    )
    post_save.connect(
        _on_user_saved, sender=get_user_model(), dispatch_uid="feeds.activity.user-saved"
    )
