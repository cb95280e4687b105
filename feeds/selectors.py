"""Read rooms and messages; plain data out, so async code never touches a lazy queryset."""

from __future__ import annotations

import math
from typing import Any

from django.db.models import Count, IntegerField, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.urls import reverse
from django.utils import timezone

from feeds import access, presence
from feeds.models import Message, Reaction, ReadMarker, Room, RoomMute, UserBlock

_HISTORY_FIELDS = (
    "id",
    "content",
    "client_msg_id",
    "created_at",
    "edited_at",
    "deleted_at",
    "author__username",
    "room__slug",
)


def _payload(
    *,
    id: int,
    user: str,
    room: str,
    content: str,
    client_msg_id: str,
    created_at: Any,
    edited_at: Any,
    deleted_at: Any,
) -> dict[str, Any]:
    # `edited_at` and `deleted` appear only when set: an unchanged message is what old
    # clients always got. A tombstone keeps its id, author and client_msg_id (the
    # sender's tab may still be waiting to confirm it), never its text.
    payload = {
        "id": id,
        "user": user,
        "room": room,
        "content": "" if deleted_at else content,
        "client_msg_id": client_msg_id,
        "created_at": created_at.isoformat(),
    }
    if deleted_at:
        payload["deleted"] = True
    elif edited_at:
        payload["edited_at"] = edited_at.isoformat()
    return payload


def message_payload(message: Message) -> dict[str, Any]:
    """The public wire format of one message (history items and broadcast data)."""
    return _payload(
        id=message.pk,
        user=message.author.username,
        room=message.room.slug,
        content=message.content,
        client_msg_id=message.client_msg_id,
        created_at=message.created_at,
        edited_at=message.edited_at,
        deleted_at=message.deleted_at,
    )


def _row_payload(row: dict[str, Any]) -> dict[str, Any]:
    return _payload(
        id=row["id"],
        user=row["author__username"],
        room=row["room__slug"],
        content=row["content"],
        client_msg_id=row["client_msg_id"],
        created_at=row["created_at"],
        edited_at=row["edited_at"],
        deleted_at=row["deleted_at"],
    )


def message_before(*, room_id: int, message_id: int) -> int | None:
    """The id of the room's message just before `message_id` (None: it is the first)."""
    qs = Message.objects.filter(room_id=room_id, id__lt=message_id).order_by("-id")
    return qs.values_list("id", flat=True).first()


def _chained(rows: list[dict[str, Any]], prev: int | None) -> list[dict[str, Any]]:
    # Consecutive rows of one read are consecutive in the room: each one's `prev` is the
    # row before it, the first's is given.
    reactions = _reactions([row["id"] for row in rows if not row["deleted_at"]])
    out = []
    for row in rows:
        item = {**_row_payload(row), "prev": prev}
        if row["id"] in reactions:
            item["reactions"] = reactions[row["id"]]
        out.append(item)
        prev = row["id"]
    return out


def _reactions(message_ids: list[int]) -> dict[int, dict[str, list[str]]]:
    """message id -> emoji -> who reacted with it, in the order they did (one query)."""
    if not message_ids:
        return {}
    rows = (
        Reaction.objects.filter(message_id__in=message_ids)
        .order_by("id")
        .values_list("message_id", "emoji", "user__username")
    )
    out: dict[int, dict[str, list[str]]] = {}
    for message_id, emoji, username in rows:
        out.setdefault(message_id, {}).setdefault(emoji, []).append(username)
    return out


def message_history(
    *, room_id: int, before: int | None = None, after: int | None = None, limit: int = 50
) -> tuple[list[dict[str, Any]], bool]:
    """Up to `limit` messages, oldest first, and whether more lie beyond them.

    `after` pages forward from an id (backfill after a reconnect); otherwise the page
    ends at the newest message, or just before `before` (scrolling back). Each message
    carries `prev`, the id of the room's message before it, so a client can tell a gap.
    """
    qs = Message.objects.filter(room_id=room_id)
    if after is not None:
        rows = list(qs.filter(id__gt=after).order_by("id").values(*_HISTORY_FIELDS)[: limit + 1])
        prev = message_before(room_id=room_id, message_id=after + 1) if rows else None
        return _chained(rows[:limit], prev), len(rows) > limit
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id").values(*_HISTORY_FIELDS)[: limit + 1])
    page = rows[:limit]
    page.reverse()
    prev = rows[limit]["id"] if len(rows) > limit else None  # the row read past the page
    return _chained(page, prev), len(rows) > limit


def message_by_client_id(
    *, room_id: int, author_id: int, client_msg_id: str
) -> dict[str, Any] | None:
    """The message `author_id` already sent to the room under `client_msg_id`, if any."""
    message = (
        Message.objects.filter(room_id=room_id, author_id=author_id, client_msg_id=client_msg_id)
        .select_related("author", "room")
        .first()
    )
    if message is None:
        return None
    return {
        **message_payload(message),
        "prev": message_before(room_id=room_id, message_id=message.pk),
    }


def mute_remaining(*, room_id: int, user_id: int) -> int:
    """Whole seconds the user stays muted in the room (0: not muted)."""
    until = (
        RoomMute.objects.filter(room_id=room_id, user_id=user_id, until__gt=timezone.now())
        .values_list("until", flat=True)
        .first()
    )
    return 0 if until is None else math.ceil((until - timezone.now()).total_seconds())


def message_context(*, message: Message, around: int = 3) -> list[dict[str, Any]]:
    """The message with up to `around` messages of its room before and after it."""
    qs = Message.objects.filter(room_id=message.room_id)
    before = list(qs.filter(id__lt=message.pk).order_by("-id").values(*_HISTORY_FIELDS)[:around])
    rest = list(qs.filter(id__gte=message.pk).order_by("id").values(*_HISTORY_FIELDS)[: around + 1])
    return [_row_payload(row) for row in [*reversed(before), *rest]]


def direct_partners(*, user_id: int, room_ids: list[int]) -> dict[int, str]:
    """room id -> the other member's username, for the given direct-message rooms."""
    rows = (
        Room.members.through.objects.filter(room_id__in=room_ids)
        .exclude(user_id=user_id)
        .values_list("room_id", "user__username")
    )
    return dict(rows)


def unread_counts(*, user: Any) -> dict[int, tuple[int, int]]:
    """room id -> (unread messages, of which mention the user), one query for all rooms.

    Counts the messages after the user's read marker in each room they have one for (and
    may still enter), except their own and tombstones; rooms with none unread are left
    out. It starts from the user's markers (the (user, room) unique index) and counts each
    room's unread messages as a range of the (room, id) index, so it reads no message
    the user has read. On PostgreSQL (200 rooms of 200 messages, 50 unread in each):

        Hash Join  (Hash Cond: feeds_readmarker.room_id = v0.id: the rooms one may enter)
          ->  Seq Scan on feeds_readmarker  Filter: (user_id = 2)
                (the (user, room) index once the table holds more than a page of users)
          SubPlan 1  (unread; SubPlan 2 the same range, counting mentions)
            ->  Limit -> GroupAggregate
                  ->  Index Scan using message_room_id on feeds_message
                        Index Cond: ((room_id = feeds_readmarker.room_id)
                                     AND (id > feeds_readmarker.last_read_id))
                        Filter: ((deleted_at IS NULL) AND (author_id <> 2))
    """
    if not user.is_authenticated:
        return {}
    unread = Message.objects.filter(
        room_id=OuterRef("room_id"), id__gt=OuterRef("last_read_id"), deleted_at__isnull=True
    ).exclude(author_id=user.pk)
    blocked = UserBlock.objects.filter(blocker_id=user.pk).values("blocked_id")
    mentions = unread.filter(content__icontains=f"@{user.username}").exclude(author_id__in=blocked)
    rows = (
        ReadMarker.objects.filter(
            user_id=user.pk, room_id__in=access.rooms_visible_to(user).values("id")
        )
        .annotate(unread=_count(unread), mentions=_count(mentions))
        .values_list("room_id", "unread", "mentions")
    )
    # Filtered here, not in SQL, where PostgreSQL would count every room twice.
    return {room_id: (n, m) for room_id, n, m in rows if n}


def _count(messages: QuerySet[Message]) -> Coalesce:
    per_room = messages.order_by().values("room_id").annotate(n=Count("id")).values("n")
    return Coalesce(Subquery(per_room[:1], output_field=IntegerField()), 0)


def last_read(*, user_id: int, room_id: int) -> int | None:
    """The newest message id the user has read in the room (None: no marker yet)."""
    qs = ReadMarker.objects.filter(user_id=user_id, room_id=room_id)
    return qs.values_list("last_read_id", flat=True).first()


def room_list(*, user: Any) -> list[dict[str, Any]]:
    """The rooms `user` may enter, with how many people are in each right now and how
    many messages in each the user has not read (and how many of those mention them)."""
    rooms = list(
        access.rooms_visible_to(user)
        .order_by("title", "id")
        .values("id", "slug", "title", "is_private", "direct_key")
    )
    counts = presence.online_counts([room["id"] for room in rooms])
    unread = unread_counts(user=user)
    # A direct-message room is listed by the other person's name.
    partners = direct_partners(
        user_id=user.pk, room_ids=[room["id"] for room in rooms if room["direct_key"]]
    )
    return [
        {
            "slug": room["slug"],
            "title": partners.get(room["id"], room["title"]),
            "is_private": room["is_private"],
            "direct": room["direct_key"] is not None,
            "online": counts.get(room["id"], 0),
            "unread": unread.get(room["id"], (0, 0))[0],
            "mentions": unread.get(room["id"], (0, 0))[1],
            "url": reverse("chat:room", args=[room["slug"]]),
        }
        for room in rooms
    ]


def room_entry(*, user: Any, slug: str) -> Room | None:
    """The room a connection or page may open, or None (see feeds.access)."""
    return access.room_for(user, slug)
