"""Blocking: a user stops another's direct messages and mentions reaching them.

A block is one row (`UserBlock`), read where it matters: a message posted to a direct
message whose other member blocked its author is refused (`blocked`, feeds.services),
opening a new direct message with someone who blocked you is refused, and a mention by a
blocked author notifies nobody and is not counted as a mention on `/chat/`. Nothing else
changes: both still see each other in public rooms.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError

from feeds import protocol
from feeds.membership import user_named
from feeds.models import UserBlock


def user_block(*, blocker: Any, username: str) -> Any:
    """Block the user named `username`; blocking again changes nothing. Returns them."""
    blocked = user_named(username)
    if blocked.pk == blocker.pk:
        raise ValidationError("you cannot block yourself", code=protocol.INVALID)
    UserBlock.objects.get_or_create(blocker=blocker, blocked=blocked)
    return blocked


def user_unblock(*, blocker: Any, username: str) -> Any:
    """Lift a block (none to lift changes nothing). Returns the user."""
    blocked = user_named(username)
    UserBlock.objects.filter(blocker=blocker, blocked=blocked).delete()
    return blocked


def is_blocked(*, blocker_id: int, blocked_id: int) -> bool:
    return UserBlock.objects.filter(blocker_id=blocker_id, blocked_id=blocked_id).exists()


def has_blocked(*, blocker_id: int, username: str) -> bool:
    """Whether the user blocked the user named `username` (the direct-message page asks)."""
    qs = UserBlock.objects.filter(blocker_id=blocker_id, blocked__username=username)
    return qs.exists()


def check_direct(*, sender_id: int, direct_key: str) -> None:
    """Refuse (code `blocked`) a message to a direct-message room (its `direct_key`, the
    two user ids) whose other member blocked the sender."""
    recipient_id = next(int(i) for i in direct_key.split(":") if int(i) != sender_id)
    if is_blocked(blocker_id=recipient_id, blocked_id=sender_id):
        raise ValidationError(
            "this person does not take direct messages from you", code=protocol.BLOCKED
        )


def blockers_of(*, user_id: int, among: set[int]) -> set[int]:
    """The users of `among` who blocked `user_id`."""
    qs = UserBlock.objects.filter(blocked_id=user_id, blocker_id__in=among)
    return set(qs.values_list("blocker_id", flat=True))
