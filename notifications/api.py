"""What site code calls to send users notifications: register_kind() once, then notify().

from notifications.api import notify, register_kind

register_kind("comment.reply", category="comments", channels=("in_app", "email"))
notify(alice, kind="comment.reply", title="bob replied to your comment")
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import models

from notifications import kinds, preferences, selectors, services
from notifications.kinds import EMAIL, IN_APP, UnknownKind
from notifications.kinds import register as register_kind
from notifications.models import Notification

__all__ = ["EMAIL", "IN_APP", "UnknownKind", "notify", "register_kind"]

# A user, or a user's id.
Recipient = AbstractBaseUser | int
UNKNOWN_LISTED = 5


def notify(
    recipients: Recipient | Iterable[Recipient],
    *,
    title: str,
    body: str = "",
    kind: str = kinds.DEFAULT_KIND,
    level: str | None = None,
    url: str = "",
    actor: AbstractBaseUser | None = None,
    target: models.Model | None = None,
) -> list[Notification]:
    """Send a notification to each recipient; each gets it live once the transaction commits.

    `recipients`: a user, a user id, or an iterable (a QuerySet too) of users or ids; a
    user listed twice gets one. One recipient is created as any single notification is;
    more are written in batches of services.SEND_BATCH_SIZE, one transaction each (a
    savepoint inside the caller's transaction, published when that one commits). Returns
    the notifications created, in id order. `kind`: a registered kind (register_kind;
    "general" if not given), whose level is used when `level` is None. Raises
    ValidationError, before anything is written, for bad content, an unknown kind
    (UnknownKind) or an unknown user. Not from async code: wrap it in sync_to_async.
    """
    level = services.level_of(kind=kind, level=level)
    content = {"title": title, "body": body, "kind": kind, "level": level, "url": url}
    services.notification_check(**content, actor=actor, target=target)
    users = _as_user_ids(recipients)
    if len(users) == 1:
        ((user_id, user),) = users.items()
        user = user or get_user_model().objects.filter(pk=user_id).first()
        if user is None:
            raise ValidationError(f"unknown user id: {user_id}")
        # Whoever turned the kind's category off gets nothing: no row, no event (the bulk
        # path below leaves them out the same way).
        if preferences.muted_user_ids(user_ids=[user_id], kind=kinds.get(kind)):
            return []
        return [services.notification_create(recipient=user, **content, actor=actor, target=target)]
    ids = list(users)
    _check_known(ids)
    created: list[Notification] = []
    for start in range(0, len(ids), services.SEND_BATCH_SIZE):
        batch = ids[start : start + services.SEND_BATCH_SIZE]
        created += services.notifications_send_batch(
            recipient_ids=batch, **content, actor=actor, target=target
        )
    return created


def _as_user_ids(recipients: Recipient | Iterable[Recipient]) -> dict[int, Any]:
    """Each recipient's id, in order, once; mapped to the user object when one was given."""
    user_model = get_user_model()
    if isinstance(recipients, models.QuerySet) and issubclass(recipients.model, user_model):
        return dict.fromkeys(recipients.values_list("pk", flat=True))
    if isinstance(recipients, user_model | int) or not isinstance(recipients, Iterable):
        recipients = [recipients]
    elif isinstance(recipients, str | bytes):
        raise ValidationError("recipients must be users or user ids, not a string")
    users: dict[int, Any] = {}
    for recipient in recipients:
        if isinstance(recipient, user_model) and recipient.pk is not None:
            users.setdefault(recipient.pk, recipient)
        elif isinstance(recipient, int) and not isinstance(recipient, bool):
            users.setdefault(recipient, None)
        else:
            raise ValidationError(
                f"recipients must be saved users or user ids, not {type(recipient).__name__}"
            )
    return users


def _check_known(ids: list[int]) -> None:
    unknown = selectors.unknown_user_ids(ids=ids)
    if not unknown:
        return
    listed = ", ".join(str(pk) for pk in unknown[:UNKNOWN_LISTED])
    more = f" and {len(unknown) - UNKNOWN_LISTED} more" if len(unknown) > UNKNOWN_LISTED else ""
    raise ValidationError(
        f"{len(unknown)} unknown user id{'s' if len(unknown) > 1 else ''}: {listed}{more}"
    )
