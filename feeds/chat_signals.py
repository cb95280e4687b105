"""Wire chat to the rest of the site: mentions → notifications, sessions and access → sockets."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.signals import user_logged_out
from django.db.models.signals import m2m_changed, post_delete, post_save

from feeds import services
from feeds.models import Message, Room
from notifications.hooks import credentials_changed


def _on_message_saved(sender: Any, instance: Message, created: bool, **kw: Any) -> None:
    if created:
        services.message_notify_mentions(message=instance)


def _on_logged_out(sender: Any, request: Any, user: Any, **kw: Any) -> None:
    # Only that session ends: the user's other devices stay signed in.
    if user is not None:
        session_key = getattr(getattr(request, "session", None), "session_key", None) or ""
        services.user_chat_sockets_close(user_id=user.pk, session_key=session_key)


def _on_credentials_changed(sender: Any, user: Any, **kw: Any) -> None:
    # Password changed or deactivated: every session of the user is void.
    services.user_chat_sockets_close(user_id=user.pk)


def _on_room_changed(sender: Any, instance: Room, **kw: Any) -> None:
    if not kw.get("created") and instance.pk is not None:
        services.room_access_changed(room_id=instance.pk)


def _on_members_changed(sender: Any, instance: Any, action: str, reverse: bool, **kw: Any) -> None:
    if action == "post_add":
        services.members_joined(instance=instance, reverse=reverse, pk_set=kw["pk_set"])
    if action in ("post_remove", "post_clear"):
        # Forward: room.members.remove(user); reverse: user.chat_rooms.remove(room).
        if reverse:
            services.user_access_changed(user_id=instance.pk)
        else:
            services.room_access_changed(room_id=instance.pk)
            services.members_left(user_ids=kw.get("pk_set") or ())  # None after a clear


def connect() -> None:
    post_save.connect(_on_message_saved, sender=Message, dispatch_uid="feeds.chat.mentions")
    user_logged_out.connect(_on_logged_out, dispatch_uid="feeds.chat.logout")
    credentials_changed.connect(_on_credentials_changed, dispatch_uid="feeds.chat.credentials")
    post_save.connect(_on_room_changed, sender=Room, dispatch_uid="feeds.chat.room_saved")
    post_delete.connect(_on_room_changed, sender=Room, dispatch_uid="feeds.chat.room_deleted")
    m2m_changed.connect(
        _on_members_changed, sender=Room.members.through, dispatch_uid="feeds.chat.members"
    )
