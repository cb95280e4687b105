"""Change chat state; the only callers of feeds.events."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from feeds import access, blocking, events, protocol, ratelimit, selectors
from feeds.models import CONTENT_MAX, Message, Reaction, ReadMarker, Room
from notifications import kinds
from notifications.models import Notification
from notifications.preferences import muted_user_ids
from notifications.services import TITLE_MAX as NOTIFICATION_TITLE_MAX
from notifications.services import group_members_changed, notification_create

ROOM_TITLE_MAX = Room._meta.get_field("title").max_length
ROOM_SLUG_BASE_MAX = 40
DIRECT_SLUG_PREFIX = "dm-"
MENTIONS_MAX = 20
# The notification kind of a chat mention (registered in feeds.apps).
MENTION_KIND = "room.mention"
# `@name` not glued to a preceding word (so e-mail addresses are not mentions).
_MENTION = re.compile(r"(?<![\w@.+-])@([\w.@+-]{1,150})")


def room_create(*, title: str, created_by: Any, is_private: bool = False) -> Room:
    """Create a room whose slug comes from its title (`-2`, `-3`… when taken); a private
    one has its creator as its first member, who runs it (feeds.membership)."""
    title = title.strip()
    if not title:
        raise ValidationError("title must not be empty")
    if len(title) > ROOM_TITLE_MAX:
        raise ValidationError(f"title is longer than {ROOM_TITLE_MAX} characters")
    base = slugify(title)[:ROOM_SLUG_BASE_MAX].strip("-") or "room"
    if base.split("-")[0] == DIRECT_SLUG_PREFIX.rstrip("-"):
        # `/chat/dm/` opens direct messages and `dm-…` slugs are theirs (feeds.direct)
        base = f"room-{base}"
    for n in range(1, 1000):
        slug = base if n == 1 else f"{base}-{n}"
        if Room.objects.filter(slug=slug).exists():
            continue
        try:
            with transaction.atomic():
                room = Room.objects.create(
                    slug=slug, title=title, created_by=created_by, is_private=is_private
                )
                if is_private:
                    room.members.add(created_by)
                return room
        except IntegrityError:
            continue  # created by someone else in between: try the next suffix
    raise ValidationError("too many rooms with this title; choose another")


def message_check(*, content: str) -> None:
    """Raise ValidationError for content no room should get."""
    if not content.strip():
        raise ValidationError("message is empty")
    if len(content) > CONTENT_MAX:
        raise ValidationError(f"message is longer than {CONTENT_MAX} characters")


def message_post(
    *,
    room: Room,
    author: Any,
    content: str,
    client_msg_id: str = "",
    client_fields: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], bool]:
    """Store a message, then broadcast it to the room after commit.

    Returns (payload, created). A client_msg_id the author already used in the room
    returns the stored message with created=False, and nothing is stored or broadcast
    again; reused for different content, it raises ValidationError (code "reused"). A
    muted author gets ValidationError code `muted` with the seconds left as `remaining`.
    """
    message_check(content=content)
    if client_msg_id:
        existing = _resent(room=room, author=author, content=content, client_msg_id=client_msg_id)
        if existing is not None:
            return existing, False
    if room.direct_key is not None:
        blocking.check_direct(sender_id=author.pk, direct_key=room.direct_key)
    if remaining := selectors.mute_remaining(room_id=room.pk, user_id=author.pk):
        raise ValidationError(
            "you are muted in this room for %(remaining)s more seconds",
            code=protocol.MUTED,
            params={"remaining": remaining},
        )
    try:
        with transaction.atomic():
            _lock_room_order(room)
            message = Message.objects.create(
                room=room, author=author, content=content, client_msg_id=client_msg_id
            )
            # Read in the transaction that wrote it: no other message of the room can
            # commit in between (see _lock_room_order), so `prev` is its predecessor.
            prev = selectors.message_before(room_id=room.pk, message_id=message.pk)
            payload = {**selectors.message_payload(message), "prev": prev}
            events.message_broadcast_on_commit(
                room_id=room.pk, data={**(client_fields or {}), **payload}
            )
    except IntegrityError:
        # The same resend raced in on another connection: the unique constraint decided.
        if not client_msg_id:
            raise
        existing = _resent(room=room, author=author, content=content, client_msg_id=client_msg_id)
        if existing is None:
            raise
        return existing, False
    return payload, True


def _lock_room_order(room: Room) -> None:
    """Make the room's messages take their ids in the order they commit.

    SQLite holds one write lock from the INSERT to the commit, so they do already; on
    other databases ids come from a sequence at INSERT and commits may pass each other,
    so messages of one room are serialised on the room's row."""
    if connection.features.has_select_for_update:
        Room.objects.select_for_update().filter(pk=room.pk).values_list("pk").first()


def _resent(*, room: Room, author: Any, content: str, client_msg_id: str) -> dict[str, Any] | None:
    existing = selectors.message_by_client_id(
        room_id=room.pk, author_id=author.pk, client_msg_id=client_msg_id
    )
    changed = existing is not None and ("edited_at" in existing or "deleted" in existing)
    if existing is not None and not changed and existing["content"] != content:
        # A client bug (an id reused for another message): acking it would lose the message.
        raise ValidationError(
            "client_msg_id was already used for a different message", code="reused"
        )
    return existing


def _message_to_change(*, room: Room, message_id: int) -> Message:
    # Locked for the transaction: an edit and a delete of one message cannot interleave.
    message = (
        Message.objects.select_for_update(of=("self",))
        .select_related("author", "room")
        .filter(room=room, pk=message_id)
        .first()
    )
    if message is None:
        raise ValidationError(f"no message {message_id} in this room", code=protocol.NOT_FOUND)
    return message


def message_edit(*, room: Room, editor: Any, message_id: int, content: str) -> dict[str, Any]:
    """Replace the text of the editor's own message, then tell the room after commit.

    Refusals are ValidationErrors whose code is the error frame's (feeds.protocol).
    Only the author edits, and only within CHAT_EDIT_WINDOW_SECONDS of sending; a deleted
    message is not found. Returns the message as history now gives it (with `prev`)."""
    message_check(content=content)
    with transaction.atomic():
        message = _message_to_change(room=room, message_id=message_id)
        if message.deleted_at is not None:
            raise ValidationError(f"message {message_id} was deleted", code=protocol.NOT_FOUND)
        if message.author_id != editor.pk:
            raise ValidationError("only its author can edit a message", code=protocol.FORBIDDEN)
        window = settings.CHAT_EDIT_WINDOW_SECONDS
        if (timezone.now() - message.created_at).total_seconds() > window:
            span = f"{window // 60} minutes" if window >= 60 else f"{window} seconds"
            raise ValidationError(
                f"messages can be edited for {span} after sending", code=protocol.EDIT_WINDOW_OVER
            )
        changed = message.content != content
        if changed:
            message.content, message.edited_at = content, timezone.now()
            message.save(update_fields=["content", "edited_at"])
        payload = {
            **selectors.message_payload(message),
            "prev": selectors.message_before(room_id=room.pk, message_id=message.pk),
        }
        if changed:  # an unchanged resend tells no one
            events.message_edited_on_commit(room_id=room.pk, data=payload)
    return payload


def message_delete(*, room: Room, actor: Any, message_id: int) -> None:
    """Turn a message into a tombstone, then tell the room after commit.

    Its author may delete it, and so may the room's moderators (feeds.access.can_moderate).
    Deleting a tombstone again changes nothing and tells no one, so a retry is safe."""
    with transaction.atomic():
        message = _message_to_change(room=room, message_id=message_id)
        if message.author_id != actor.pk and not access.can_moderate(actor, room):
            raise ValidationError(
                "only its author or a moderator can delete a message", code=protocol.FORBIDDEN
            )
        if message.deleted_at is not None:
            return
        message.content, message.deleted_at = "", timezone.now()
        message.save(update_fields=["content", "deleted_at"])
        events.message_deleted_on_commit(room_id=room.pk, message_id=message.pk)


def message_react(*, room: Room, user: Any, message_id: int, emoji: str) -> bool:
    """Toggle the user's `emoji` on a message of the room, then tell the room after commit.

    Returns whether the reaction is now on. `emoji` must be one of protocol.REACTIONS
    (ValidationError code `bad_emoji`); a deleted or unknown message is `not_found`."""
    if emoji not in protocol.REACTIONS:
        raise ValidationError("not a reaction emoji", code=protocol.BAD_EMOJI)
    with transaction.atomic():
        message = _message_to_change(room=room, message_id=message_id)
        if message.deleted_at is not None:
            raise ValidationError(f"message {message_id} was deleted", code=protocol.NOT_FOUND)
        removed, _ = Reaction.objects.filter(message=message, user=user, emoji=emoji).delete()
        if not removed:
            Reaction.objects.create(message=message, user=user, emoji=emoji)
        frame = protocol.reaction(
            message_id=message.pk, emoji=emoji, user=user.username, on=not removed
        )
        events.reaction_on_commit(room_id=room.pk, frame=frame)
    return not removed


def _newest_id(room_id: int) -> int:
    qs = Message.objects.filter(room_id=room_id).order_by("-id").values_list("id", flat=True)
    return qs.first() or 0


def read_markers_start(*, room_id: int, user_ids: Iterable[int]) -> None:
    """Give users who just joined a room a read marker at its newest message, so what is
    said from now on counts as unread for them (a marker they have already is kept)."""
    newest = _newest_id(room_id)
    ReadMarker.objects.bulk_create(
        [ReadMarker(user_id=uid, room_id=room_id, last_read_id=newest) for uid in user_ids],
        ignore_conflicts=True,
    )


def read_marker_open(*, room: Room, user: Any) -> int:
    """The user's read marker in the room, made at its newest message on a first visit."""
    last = selectors.last_read(user_id=user.pk, room_id=room.pk)
    if last is None:
        read_markers_start(room_id=room.pk, user_ids=[user.pk])
        last = selectors.last_read(user_id=user.pk, room_id=room.pk) or 0
    return last


def read_marker_move(*, room: Room, user: Any, message_id: int) -> int | None:
    """Move the user's read marker forward to `message_id` (at most the room's newest
    message), then tell the user's sockets on every process after commit.

    Returns the new marker, or None when it did not move (never backwards: tabs of one
    user read at their own pace, and the furthest read wins)."""
    target = min(message_id, _newest_id(room.pk))
    with transaction.atomic():
        moved = ReadMarker.objects.filter(
            user_id=user.pk, room_id=room.pk, last_read_id__lt=target
        ).update(last_read_id=target)
        if not moved:
            if target <= 0 or selectors.last_read(user_id=user.pk, room_id=room.pk) is not None:
                return None
            ReadMarker.objects.bulk_create(
                [ReadMarker(user_id=user.pk, room_id=room.pk, last_read_id=target)],
                ignore_conflicts=True,
            )
        events.read_marker_sync_on_commit(user_id=user.pk, room=room.slug, last_read_id=target)
    return target


def mentioned_usernames(content: str) -> set[str]:
    """The names written as `@name`; trailing sentence punctuation is tried both ways."""
    if "@" not in content:
        return set()
    names: set[str] = set()
    for match in _MENTION.finditer(content):
        name = match[1]
        names.update({name, name.rstrip(".-")} - {""})
        if len(names) >= 2 * MENTIONS_MAX:
            break
    return names


def _mentioned_user_ids(names: set[str]) -> set[int]:
    # Usernames are case-sensitive (`Bob` and `bob` may both exist): a name is matched
    # exactly, or else case-insensitively when exactly one user has it in some case. That
    # lookup reads every username, so only a capitalised `@Bob` (`bob` meant) gets it, not
    # every lowercase word after an `@` (an email address, say).
    User = get_user_model()
    exact = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    ids = set(exact.values())
    rest = {name.lower() for name in names if name not in exact and name != name.lower()}
    if rest:
        by_folded: dict[str, list[int]] = {}
        folded = User.objects.annotate(folded=Lower("username")).filter(folded__in=rest)
        for pk, name in folded.values_list("pk", "folded"):
            by_folded.setdefault(name, []).append(pk)
        ids.update(pks[0] for pks in by_folded.values() if len(pks) == 1)
    return ids


def message_notify_mentions(*, message: Message) -> list[Notification]:
    """Notify each user mentioned in `message` who can read its room (never the author,
    nor anyone who blocked the author), unless they turned chat mentions off.

    At most once per sender and target per ratelimit.MENTION_INTERVAL_SECONDS.
    """
    names = mentioned_usernames(message.content)
    if not names:
        return []
    User = get_user_model()
    candidates = set(list(_mentioned_user_ids(names) - {message.author_id})[:MENTIONS_MAX])
    candidates -= muted_user_ids(user_ids=candidates, kind=kinds.get(MENTION_KIND))
    candidates -= blocking.blockers_of(user_id=message.author_id, among=candidates)
    recipients = [
        user_id
        for user_id in sorted(access.user_ids_who_can_see(message.room, candidates))
        if ratelimit.mention_allowed(sender_id=message.author_id, target_id=user_id)
    ]
    if not recipients:
        return []
    author, room = message.author, message.room
    title = f"{author.username} mentioned you in {room.title}"[:NOTIFICATION_TITLE_MAX]
    url = f"{reverse('chat:room', args=[room.slug])}#m{message.pk}"
    return [
        notification_create(
            recipient=recipient,
            title=title,
            body=message.content,
            kind=MENTION_KIND,
            url=url,
            actor=author,
            target=message,
        )
        for recipient in User.objects.filter(pk__in=recipients).order_by("pk")
    ]


async def typing_announce(*, room_id: int, user_id: int, username: str) -> bool:
    """Tell the room the user is typing, at most once per throttle interval."""
    if not await ratelimit.typing_allowed(room_id=room_id, user_id=user_id):
        return False
    await events.typing_broadcast(room_id=room_id, user_id=user_id, username=username)
    return True


def user_chat_sockets_close(*, user_id: int, session_key: str = "") -> None:
    """Close the user's chat sockets on every process once this commits: only those of
    `session_key` when given (a logout), else all (the user's credentials changed)."""
    events.user_sockets_close_on_commit(
        user_id=user_id, code=protocol.CLOSE_SIGNED_OUT, session_key=session_key
    )


def room_access_changed(*, room_id: int) -> None:
    """After a room's privacy, members or existence changed: connections re-check access."""
    events.room_recheck_on_commit(room_id=room_id)


def user_access_changed(*, user_id: int) -> None:
    """After a user's memberships changed: their connections re-check access."""
    events.user_recheck_on_commit(user_id=user_id)
    members_left(user_ids=[user_id])


def members_joined(*, instance: Any, reverse: bool, pk_set: Iterable[int]) -> None:
    """After users joined private rooms (room.members.add or user.chat_rooms.add): what is
    said there from now on is unread for them."""
    if reverse:
        for room_id in pk_set:
            read_markers_start(room_id=room_id, user_ids=[instance.pk])
    else:
        read_markers_start(room_id=instance.pk, user_ids=pk_set)


def members_left(*, user_ids: Iterable[int]) -> None:
    """After users left private rooms: end their SSE streams and held polls, which come
    back with the channels they may read now, so a room's `chat-<id>` is refused to them
    (a stream's channels are checked when it opens)."""
    group_members_changed(user_ids=user_ids)
