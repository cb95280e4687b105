"""Room moderators deal with abuse: mute a member for a while, ban them, and anyone
reports a message to the staff.

A room's moderators are its owner, its admins and staff (feeds.access.can_moderate);
they cannot mute or ban each other. The state lives in the database, so every server
process sees it: a mute is checked when a message is stored (feeds.services), a ban by
the access rules (feeds.access), and a ban closes the user's sockets on the room on every
process (4003) at once. Reports wait in the Django admin (feeds.admin.ReportAdmin).
Refusals are ValidationErrors with the error frame's codes.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from feeds import access, protocol, services
from feeds.membership import user_named
from feeds.models import Message, Report, Room, RoomBan, RoomMute


def _target(room: Room, by: Any, username: str) -> Any:
    """The user a moderator acts on: someone who may read the room and runs no part of it."""
    if not access.can_moderate(by, room) or (room.direct_key is not None and not by.is_staff):
        raise ValidationError(
            "only the room's owner, its admins and staff can do this", code=protocol.FORBIDDEN
        )
    user = user_named(username)
    if not access.user_ids_who_can_see(room, {user.pk}):
        raise ValidationError(f"{user.username} is not in this room", code=protocol.NOT_FOUND)
    if access.can_moderate(user, room):
        raise ValidationError(
            f"{user.username} moderates this room: they cannot be muted or banned",
            code=protocol.FORBIDDEN,
        )
    return user


def room_mute(*, room: Room, by: Any, username: str, minutes: int) -> datetime:
    """Stop the user posting in the room for `minutes` (a new mute replaces the old one);
    returns when it ends."""
    user = _target(room, by, username)
    until = timezone.now() + timedelta(minutes=minutes)
    RoomMute.objects.update_or_create(room=room, user=user, defaults={"until": until, "by": by})
    return until


def room_ban(*, room: Room, by: Any, username: str) -> None:
    """Put the user out of the room for good: their sockets on it close (4003) on every
    process, they leave its members, and they may not enter or be added again."""
    user = _target(room, by, username)
    with transaction.atomic():
        RoomBan.objects.get_or_create(room=room, user=user, defaults={"by": by})
        RoomMute.objects.filter(room=room, user=user).delete()
        room.admins.remove(user)
        room.members.remove(user)  # a private room: its signal ends their SSE streams too
        services.user_access_changed(user_id=user.pk)


def message_report(*, room: Room, reporter: Any, message_id: int, reason: str = "") -> Report:
    """Report a message of the room to the staff; reporting it again changes nothing."""
    message = Message.objects.filter(room=room, pk=message_id, deleted_at__isnull=True).first()
    if message is None:
        raise ValidationError(f"no message {message_id} in this room", code=protocol.NOT_FOUND)
    report, _ = Report.objects.get_or_create(
        message=message, reporter=reporter, defaults={"reason": reason}
    )
    return report
