"""Private rooms run by their members: who is in a room, and who may change that.

A private room's creator (its owner) and the members they promote (its admins) add
members by username, remove them and promote them; staff may do the same anywhere. An
added member is notified (notifications.services). A removed one loses the room at once:
`room.members.remove()` sends the m2m signal that closes their sockets on the room on
every process (4003) and ends their SSE streams (feeds.chat_signals), and the room leaves
their list (feeds.access). Refusals are ValidationErrors with the error frame's codes.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.urls import reverse

from feeds import access, protocol
from feeds.models import Room, RoomBan
from notifications import kinds
from notifications.preferences import muted_user_ids
from notifications.services import TITLE_MAX as NOTIFICATION_TITLE_MAX
from notifications.services import notification_create

# The notification kind of "you were added to a room" (registered in feeds.apps).
INVITE_KIND = "room.invite"

OWNER, ADMIN, MEMBER = "owner", "admin", "member"


def _check_manager(room: Room, by: Any) -> None:
    if room.direct_key is not None:
        raise ValidationError(
            "a direct message is between its two people: no members to manage",
            code=protocol.INVALID,
        )
    if not room.is_private:
        raise ValidationError(
            "public rooms are open to everyone: no members to manage", code=protocol.INVALID
        )
    if not access.can_moderate(by, room):
        raise ValidationError(
            "only the room's owner and admins can manage its members", code=protocol.FORBIDDEN
        )


def user_named(username: str) -> Any:
    """The active user named `username`; ValidationError `not_found` if none."""
    user = get_user_model().objects.filter(username=username.strip(), is_active=True).first()
    if user is None:
        raise ValidationError(f"no user named {username.strip()[:150]!r}", code=protocol.NOT_FOUND)
    return user


def _member_named(room: Room, username: str) -> Any:
    user = user_named(username)
    if not room.members.filter(pk=user.pk).exists():
        raise ValidationError(f"{user.username} is not a member", code=protocol.NOT_FOUND)
    return user


def room_member_add(*, room: Room, by: Any, username: str) -> Any:
    """Add the user named `username` to a private room and notify them; return the user.

    Adding a member again changes nothing and notifies no one."""
    _check_manager(room, by)
    user = user_named(username)
    if RoomBan.objects.filter(room=room, user=user).exists():
        raise ValidationError(f"{user.username} is banned from this room", code=protocol.FORBIDDEN)
    with transaction.atomic():
        if room.members.filter(pk=user.pk).exists():
            return user
        room.members.add(user)
        title = f"{by.username} added you to {room.title}"[:NOTIFICATION_TITLE_MAX]
        url = reverse("chat:room", args=[room.slug])
        if not muted_user_ids(user_ids=[user.pk], kind=kinds.get(INVITE_KIND)):
            notification_create(
                recipient=user, title=title, url=url, actor=by, target=room, kind=INVITE_KIND
            )
    return user


def room_member_remove(*, room: Room, by: Any, username: str) -> None:
    """Take a member out of a private room: their sockets on it close on every process.

    The owner cannot be removed; an admin is removed only by the owner or staff."""
    _check_manager(room, by)
    user = _member_named(room, username)
    if user.pk == room.created_by_id:
        raise ValidationError("the room's owner cannot be removed", code=protocol.FORBIDDEN)
    is_admin = room.admins.filter(pk=user.pk).exists()
    if is_admin and user.pk != by.pk and role_of(room, by) != OWNER and not by.is_staff:
        raise ValidationError("only the owner can remove another admin", code=protocol.FORBIDDEN)
    with transaction.atomic():
        room.admins.remove(user)
        room.members.remove(user)  # feeds.chat_signals: recheck (4003) and stream kicks


def room_member_promote(*, room: Room, by: Any, username: str) -> None:
    """Make a member an admin of the room (they may then manage its members)."""
    _check_manager(room, by)
    room.admins.add(_member_named(room, username))


def role_of(room: Room, user: Any) -> str:
    """The user's role in the room: owner, admin or member (the caller checked membership)."""
    if user.pk == room.created_by_id:
        return OWNER
    return ADMIN if room.admins.filter(pk=user.pk).exists() else MEMBER


def room_members(*, room: Room) -> list[dict[str, str]]:
    """A private room's members with their roles, owner first, then admins, then by name."""
    admins = set(room.admins.values_list("pk", flat=True))
    rows = room.members.order_by("username").values_list("pk", "username")
    order = {OWNER: 0, ADMIN: 1, MEMBER: 2}
    members = [
        {
            "username": name,
            "role": OWNER if pk == room.created_by_id else ADMIN if pk in admins else MEMBER,
        }
        for pk, name in rows
    ]
    return sorted(members, key=lambda m: order[m["role"]])
