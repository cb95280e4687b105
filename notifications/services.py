"""Change notification state; the only callers of notifications.events."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.utils import timezone

from notifications import events
from notifications.models import Level, Notification, ReadChange

TITLE_MAX = Notification._meta.get_field("title").max_length
BODY_MAX = 5000
URL_MAX = Notification._meta.get_field("url").max_length


def clean_text(text: str) -> str:
    """Replace NUL, which PostgreSQL cannot store, so every database keeps the same text."""
    return text.replace("\x00", "\ufffd")


def notification_check(*, title: str, body: str = "", level: str = "info", url: str = "") -> None:
    """Raise ValidationError with a readable message for content no client should get."""
    if not title or not title.strip():
        raise ValidationError("title must not be empty")
    if len(title) > TITLE_MAX:
        raise ValidationError(f"title is longer than {TITLE_MAX} characters")
    if len(body) > BODY_MAX:
        raise ValidationError(f"body is longer than {BODY_MAX} characters")
    if level not in Level.values:
        raise ValidationError(f"level must be one of {', '.join(Level.values)}")
    if len(url) > URL_MAX:
        raise ValidationError(f"url is longer than {URL_MAX} characters")
    if url and not (url.startswith("/") or url.startswith("https://") or url.startswith("http://")):
        raise ValidationError("url must be a path (/...) or an http(s) URL")


def notification_create(
    *,
    recipient: Any,
    title: str,
    body: str = "",
    level: str = Level.INFO,
    url: str = "",
    actor: Any = None,
    target: models.Model | None = None,
) -> Notification:
    """Create a notification; the post_save wiring pushes it to the recipient after commit."""
    title, body = clean_text(title), clean_text(body)
    notification_check(title=title, body=body, level=level, url=url)
    return Notification.objects.create(
        recipient=recipient,
        title=title,
        body=body,
        level=level,
        url=url,
        actor=actor,
        target=target,
    )


def notification_publish(*, notification: Notification) -> None:
    """Publish a freshly saved notification to its recipient's stream after commit."""
    events.notify_user_on_commit(notification=notification)


def notifications_publish_bulk(*, notifications: list[Notification]) -> None:
    """Publish rows made by bulk_create (which sends no post_save) after commit."""
    events.notify_users_on_commit(notifications=notifications)


def user_streams_close(*, user_id: int, session_key: str | None = None) -> None:
    """Close a user's SSE streams everywhere: on logout (that session), on password change
    or deactivation (all of them). Their old cookie is refused when they reconnect."""
    events.streams_close_on_commit(user_id=user_id, session_key=session_key)


def notification_mark_read(*, user: Any, notification_id: int) -> int:
    """Mark one of the user's notifications read; return their unread count.

    Raises Notification.DoesNotExist for an id that is not theirs.
    """
    with transaction.atomic():
        if not Notification.objects.filter(id=notification_id, recipient=user).exists():
            raise Notification.DoesNotExist(notification_id)
        _mark(user=user, ids=[notification_id])
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def notification_mark_all_read(*, user: Any) -> int:
    """Mark every unread notification of the user read; return their unread count (0)."""
    with transaction.atomic():
        ids = list(
            Notification.objects.filter(recipient=user, read_at__isnull=True).values_list(
                "id", flat=True
            )
        )
        _mark(user=user, ids=ids)
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def _mark(*, user: Any, ids: list[int]) -> None:
    changed = list(
        Notification.objects.filter(id__in=ids, recipient=user, read_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)
    )
    if not changed:
        return
    Notification.objects.filter(id__in=changed).update(read_at=timezone.now())
    change = ReadChange.objects.create(user=user, notification_ids=changed)
    events.read_changed_on_commit(change=change)
