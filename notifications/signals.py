"""Wire models and auth events to the notifications services."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import post_save, pre_save
from django.dispatch import Signal

from notifications.models import Notification

# Sent by the publish service inside its transaction, with `announcement=`: other apps'
# rows (the activity feed) commit or roll back with the publish itself.
announcement_published = Signal()

# Sent with `user=` when a user's password changed or they were deactivated: every session
# of theirs is void, so each app closes that user's live connections.
credentials_changed = Signal()


def _on_notification_saved(sender: Any, instance: Notification, created: bool, **kw: Any) -> None:
    if created:
        from notifications.services import notification_publish

        notification_publish(notification=instance)


def _on_logged_out(sender: Any, request: Any, user: Any, **kw: Any) -> None:
    if user is not None:
        from notifications.services import user_streams_close

        user_streams_close(user_id=user.pk, session_key=request.session.session_key)


def _remember_credentials(sender: Any, instance: Any, update_fields: Any = None, **kw: Any) -> None:
    # The values before this save, to tell a password change or deactivation on post_save.
    # A save that names its fields and touches neither (last_login on every login) needs
    # no query.
    if update_fields is not None and not {"password", "is_active"} & set(update_fields):
        instance._rt_before = None
        return
    if instance.pk:
        instance._rt_before = (
            sender.objects.filter(pk=instance.pk).values_list("password", "is_active").first()
        )


def _on_user_saved(sender: Any, instance: Any, created: bool, **kw: Any) -> None:
    before = getattr(instance, "_rt_before", None)
    if not created and before and before != (instance.password, instance.is_active):
        credentials_changed.send(sender=sender, user=instance)


def _on_credentials_changed(sender: Any, user: Any, **kw: Any) -> None:
    from notifications.services import user_streams_close

    user_streams_close(user_id=user.pk)


def connect() -> None:
    post_save.connect(
        _on_notification_saved, sender=Notification, dispatch_uid="notifications.publish"
    )
    user_logged_out.connect(_on_logged_out, dispatch_uid="notifications.logout")
    user = get_user_model()
    pre_save.connect(_remember_credentials, sender=user, dispatch_uid="notifications.user-pre")
    post_save.connect(_on_user_saved, sender=user, dispatch_uid="notifications.user-post")
    credentials_changed.connect(_on_credentials_changed, dispatch_uid="notifications.revoke")
