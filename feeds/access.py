"""Who may enter which chat room: one place, default deny.

Public rooms are open to every active, logged-in user; private rooms to their members
only; no room to a user banned from it (feeds.moderation). Everything else (anonymous,
inactive, unknown room) is refused, and refusals look the same from outside, so a
private room's existence does not leak.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet

from feeds.models import Room, RoomBan


def _is_active_user(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def rooms_visible_to(user: Any) -> QuerySet[Room]:
    """The rooms `user` may list and enter."""
    if not _is_active_user(user):
        return Room.objects.none()
    member_of = Room.members.through.objects.filter(user_id=user.pk).values("room_id")
    banned_from = RoomBan.objects.filter(user_id=user.pk).values("room_id")
    return Room.objects.filter(Q(is_private=False) | Q(id__in=member_of)).exclude(
        id__in=banned_from
    )


def room_for(user: Any, slug: str) -> Room | None:
    """The room `slug` if `user` may enter it, else None (unknown and forbidden alike).

    The same rule as rooms_visible_to, in two plain queries at most: every chat connect
    asks, and the one query with the membership subquery cost twice the CPU of a lookup
    by slug (most rooms are public: one query)."""
    if not _is_active_user(user):
        return None
    # A ban (feeds.moderation) shuts the room for the user, public or not: one NOT EXISTS
    # in the same query.
    banned = RoomBan.objects.filter(room=OuterRef("pk"), user_id=user.pk)
    room = Room.objects.filter(slug=slug).exclude(Exists(banned)).first()
    if room is None or not room.is_private:
        return room
    return room if room.members.filter(pk=user.pk).exists() else None


def can_stay(*, user_id: int, room_id: int) -> bool:
    """Re-check an open connection after a room or membership change (fresh from the DB)."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    return user is not None and rooms_visible_to(user).filter(pk=room_id).exists()


# Ids per query: under SQLite's 32,766 bound parameters with room to spare.
ACTIVE_BATCH = 5000


def active_user_ids(user_ids: Iterable[int]) -> set[int]:
    """Those of `user_ids` that still exist and are active (fresh from the DB)."""
    ids = sorted(set(user_ids))
    active: set[int] = set()
    users = get_user_model().objects.filter(is_active=True)
    for start in range(0, len(ids), ACTIVE_BATCH):
        batch = ids[start : start + ACTIVE_BATCH]
        active.update(users.filter(pk__in=batch).values_list("pk", flat=True))
    return active


def user_ids_who_can_see(room: Room, user_ids: set[int]) -> set[int]:
    """The subset of `user_ids` that are active and may read `room`."""
    users = get_user_model().objects.filter(pk__in=user_ids, is_active=True)
    if room.is_private:
        users = users.filter(chat_rooms=room)
    banned = RoomBan.objects.filter(room=room).values("user_id")
    return set(users.exclude(pk__in=banned).values_list("pk", flat=True))


def can_moderate(user: Any, room: Room) -> bool:
    """Whether `user` runs `room`: deletes anyone's message in it and manages its members.

    Staff, the room's creator (its owner) and its admins (feeds.membership)."""
    if not _is_active_user(user):
        return False
    if user.is_staff or (room.created_by_id is not None and room.created_by_id == user.pk):
        return True
    return room.admins.filter(pk=user.pk).exists()
