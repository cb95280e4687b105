"""Wire models and auth events to the notifications services."""

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_save

from notifications.hooks import credentials_changed
from notifications.models import Notification


def _on_notification_saved(sender: Any, instance: Notification, created: bool, **kw: Any) -> None:
    if created:
        from notifications.services import notification_publish

        notification_publish(notification=instance)


def _remember_read_at(sender: Any, instance: Notification, update_fields: Any = None, **kw: Any):
    # read_at before this save, to tell a change on post_save; new rows need no query.
    if instance.pk and (update_fields is None or "read_at" in update_fields):
        before = sender.objects.filter(pk=instance.pk).values_list("read_at", flat=True)
        instance._rt_read_at = before.first()


def _on_notification_changed(sender: Any, instance: Notification, created: bool, **kw: Any):
    if not created and getattr(instance, "_rt_read_at", instance.read_at) != instance.read_at:
        from notifications.services import notification_read_at_changed

        notification_read_at_changed(notification=instance)


def _on_notification_deleted(sender: Any, instance: Notification, origin: Any = None, **kw: Any):
    from notifications.services import notification_deleted

    notification_deleted(notification=instance, origin=origin)


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


def _on_user_deleted(sender: Any, instance: Any, **kw: Any) -> None:
    credentials_changed.send(sender=sender, user=instance)


def _on_groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: Any, **kw: Any
) -> None:
    # Forward: user.groups.add/remove/clear(); reverse: group.user_set.add/remove/clear().
    # A clear is taken before it happens: afterwards a group no longer names its members.
    if action not in ("post_add", "post_remove", "pre_clear") or (
        action != "pre_clear" and not pk_set
    ):
        return
    from notifications.services import group_members_changed

    if not reverse:
        user_ids = [instance.pk]
    elif action == "pre_clear":
        user_ids = list(instance.user_set.values_list("pk", flat=True))
    else:
        user_ids = sorted(pk_set)
    group_members_changed(user_ids=user_ids)


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
    post_delete.connect(_on_user_deleted, sender=user, dispatch_uid="notifications.user-deleted")
    credentials_changed.connect(_on_credentials_changed, dispatch_uid="notifications.revoke")
    m2m_changed.connect(
        _on_groups_changed, sender=user.groups.through, dispatch_uid="notifications.groups"
    )
    pre_save.connect(
        _remember_read_at, sender=Notification, dispatch_uid="notifications.read-at-pre"
    )
    post_save.connect(
        _on_notification_changed, sender=Notification, dispatch_uid="notifications.read-at-post"
    )
    post_delete.connect(
        _on_notification_deleted, sender=Notification, dispatch_uid="notifications.deleted"
    )
