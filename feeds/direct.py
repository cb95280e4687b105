"""Direct messages: a private room of two people, made on first use and reused after.

Found by `Room.direct_key` (the two user ids, lower first), so either person opening it,
from the chat page or a `/chat/dm/<username>/` link, lands in the same room. It is private
to the two (feeds.access: members only), nobody runs it (no owner, no member changes), and
it is listed and titled by the other person's name.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from feeds import blocking, protocol
from feeds.models import Room
from feeds.services import DIRECT_SLUG_PREFIX, ROOM_TITLE_MAX


def _key(a: int, b: int) -> str:
    return f"{min(a, b)}:{max(a, b)}"


def _other(user: Any, username: str) -> Any:
    other = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if other is None:
        raise ValidationError(f"no user named {username.strip()[:150]!r}", code=protocol.NOT_FOUND)
    if other.pk == user.pk:
        raise ValidationError("a direct message needs someone else", code=protocol.INVALID)
    return other


def direct_room_find(*, user: Any, username: str) -> Room | None:
    """The direct-message room of `user` and the user named `username`, if there is one."""
    return Room.objects.filter(direct_key=_key(user.pk, _other(user, username).pk)).first()


def direct_room_open(*, user: Any, username: str) -> Room:
    """The direct-message room of `user` and the user named `username`, made if new
    (refused with code `blocked` if that user blocked `user`)."""
    other = _other(user, username)
    key = _key(user.pk, other.pk)
    room = Room.objects.filter(direct_key=key).first()
    if room is not None:
        return room
    blocking.check_direct(sender_id=user.pk, direct_key=key)
    low, high = sorted((user.pk, other.pk))
    title = f"{user.username} & {other.username}"[:ROOM_TITLE_MAX]
    try:
        with transaction.atomic():
            room = Room.objects.create(
                slug=f"{DIRECT_SLUG_PREFIX}{low}-{high}",
                title=title,
                is_private=True,
                direct_key=key,
            )
            room.members.add(user, other)
    except IntegrityError:
        return Room.objects.get(direct_key=key)  # the other person opened it meanwhile
    return room
