"""Read notifications and announcements; plain data out, never a lazy queryset."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from types import MappingProxyType
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import (
    Case,
    Exists,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from notifications.batch_sql import id_set
from notifications.models import (
    Announcement,
    AnnouncementRead,
    Audience,
    CategoryPreference,
    InboxSeen,
    Notification,
    ReadChange,
)

MAX_PAGE = 100
MAX_ANNOUNCEMENTS = 50


def _count(qs: QuerySet, *, distinct: bool = False) -> Subquery:
    """`(SELECT COUNT(pk) ...)` of a queryset, for use as an annotation."""
    template = "COUNT(DISTINCT %(expressions)s)" if distinct else "COUNT(%(expressions)s)"
    count = Func(F("pk"), function="COUNT", template=template, output_field=IntegerField())
    return Subquery(qs.order_by().values(n=count))


def _member(user: int | OuterRef) -> int | OuterRef:
    # Inside Exists(...) over an announcement's rows, an outer user reference is one level deeper.
    return OuterRef(user) if isinstance(user, OuterRef) else user


def _visible_to(user: int | OuterRef, now: datetime) -> Q:
    """Announcements `user` is shown now: published, not expired, addressed to them."""
    in_group = Announcement.groups.through.objects.filter(
        announcement_id=OuterRef("pk"), group__user=_member(user)
    )
    muted = CategoryPreference.objects.filter(
        user_id=_member(user), category=OuterRef("category"), in_app=False
    )
    return (
        Q(published_at__isnull=False)
        & (Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        & (Q(audience=Audience.EVERYONE) | Exists(in_group))
        & ~Exists(muted)
    )


def _read_by(user: int | OuterRef) -> Exists:
    return Exists(
        AnnouncementRead.objects.filter(announcement_id=OuterRef("pk"), user_id=_member(user))
    )


def badge_counts(*, user_ids: set[int]) -> dict[int, tuple[int, int]]:
    """(unread, unseen) of many users, in one query; users with neither are left out.

    Unread: unread notifications plus unread visible announcements. Unseen, what the bell's
    badge shows: unread notifications after the user's seen mark (InboxSeen), plus the same
    unread announcements (they stay on the badge, and in a banner, until read).
    """
    rows = _count_rows(user_ids).values_list("pk", "n", "s", "a")
    return {pk: (n + a, s + a) for pk, n, s, a in rows if n + a}


def _count_rows(user_ids: set[int]) -> QuerySet:
    user = OuterRef("pk")
    unread_announcements = Announcement.objects.filter(_visible_to(user, timezone.now())).filter(
        ~_read_by(user)
    )
    seen_mark = InboxSeen.objects.filter(user_id=OuterRef(OuterRef("pk"))).values("notification_id")
    unread = Notification.objects.filter(recipient_id=user, read_at__isnull=True)
    return (
        get_user_model()
        .objects.filter(pk__in=id_set(user_ids))
        .annotate(
            n=_count(unread),
            s=_count(unread.filter(id__gt=Coalesce(Subquery(seen_mark), Value(0)))),
            a=_count(unread_announcements),
        )
    )


def unread_counts(*, user_ids: set[int]) -> dict[int, int]:
    """Unread notifications plus unread visible announcements of many users, in one query."""
    return {pk: unread for pk, (unread, _) in badge_counts(user_ids=user_ids).items()}


def unknown_user_ids(*, ids: list[int]) -> list[int]:
    """Those of `ids` that are no user's, in their order; one count query if all are known."""
    users = get_user_model().objects.filter(pk__in=id_set(ids))
    if users.count() == len(set(ids)):
        return []
    known = set(users.values_list("pk", flat=True))
    return [pk for pk in ids if pk not in known]


def unread_count(*, user_id: int) -> int:
    """Unread notifications and unread, unexpired announcements."""
    return unread_counts(user_ids={user_id}).get(user_id, 0)


def inbox_counts(*, user_ids: set[int]) -> dict[int, dict[str, int]]:
    """`{"unread", "unseen", "newest"}` of each of many users, in one query: what every count
    answer and inbox event carries, live or replayed. `newest` is the user's newest
    notification id when counted (0: none): a page that already has a newer notification's
    event knows these counts are older than it and asks again (static/notifications/live.js)
    instead of showing a stale badge. `event: notification` needs no `newest` (its `id` is
    it): the bulk path counts with badge_counts."""
    newest = Notification.objects.filter(recipient_id=OuterRef("pk")).order_by("-id")
    rows = (
        _count_rows(user_ids)
        .annotate(m=Coalesce(Subquery(newest.values("id")[:1]), Value(0)))
        .values_list("pk", "n", "s", "a", "m")
    )
    return {pk: {"unread": n + a, "unseen": s + a, "newest": m} for pk, n, s, a, m in rows}


# The counts of a user inbox_counts did not find (deleted meanwhile): nothing.
NO_COUNTS: Mapping[str, int] = MappingProxyType({"unread": 0, "unseen": 0, "newest": 0})


def badge_count(*, user_id: int) -> dict[str, int]:
    """`{"unread", "unseen", "newest"}` of one user (inbox_counts): the bell's badge shows
    `unseen`."""
    return inbox_counts(user_ids={user_id}).get(user_id) or dict(NO_COUNTS)


def notification_payload(notification: Notification, *, unread: int, unseen: int) -> dict[str, Any]:
    """The public wire format of `event: notification` and of the JSON API."""
    return {
        "id": notification.pk,
        **notification_content(notification),
        "unread": unread,
        "unseen": unseen,
    }


def notification_content(notification: Notification) -> dict[str, Any]:
    """The payload's middle: what every recipient of one bulk send is told alike."""
    return {
        "title": notification.title,
        "body": notification.body,
        "kind": notification.kind,
        "level": notification.level,
        "url": notification.url,
        "created_at": notification.created_at.isoformat(),
        **collapse_fields(notification),
    }


def collapse_fields(notification: Notification) -> dict[str, Any]:
    """A collapsed row's `count`, `others` (distinct actors besides the latest) and
    `replaces` (the row it took the place of); nothing for a plain one."""
    count = notification.collapse_count
    if count == 1:
        return {}
    actors = notification.collapse_actor_ids or []
    return {
        "count": count,
        "others": max(len(actors) - 1, 0),
        "replaces": notification.replaces_id,
    }


# `?state=` of the inbox API; none: the inbox (everything not archived).
STATES = ("unseen", "unread", "read", "archived")


def _in_state(qs: QuerySet, state: str | None) -> QuerySet:
    if state == "archived":
        return qs.filter(archived_at__isnull=False)
    qs = qs.filter(archived_at__isnull=True)
    if state == "unseen":
        return qs.filter(read_at__isnull=True, id__gt=F("seen_mark"))
    if state == "unread":
        return qs.filter(read_at__isnull=True)
    if state == "read":
        return qs.filter(read_at__isnull=False)
    return qs


def notification_list(
    *,
    user_id: int,
    unread: bool = False,
    state: str | None = None,
    kind: str | None = None,
    before: int | None = None,
    limit: int = 20,
) -> dict[str, Any]:
    """A page of the inbox (or of one `state` of it), newest first, with the next cursor.

    `unread=True` is `state="unread"`, kept for older clients.
    """
    # The user's seen mark (InboxSeen) rides along in the same query.
    mark = InboxSeen.objects.filter(user_id=user_id).values("notification_id")
    qs = Notification.objects.filter(recipient_id=user_id).annotate(
        seen_mark=Coalesce(Subquery(mark), Value(0))
    )
    qs = _in_state(qs, state or ("unread" if unread else None))
    if kind is not None:
        qs = qs.filter(kind=kind)
    if before is not None:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    return {
        "results": [_item(n) for n in rows],
        **badge_count(user_id=user_id),
        "next": rows[-1].pk if has_more else None,
    }


def _item(notification: Any) -> dict[str, Any]:
    item = {"id": notification.pk, **notification_content(notification)}
    item["read"] = notification.read_at is not None
    item["seen"] = item["read"] or notification.pk <= notification.seen_mark
    item["archived"] = notification.archived_at is not None
    return item


def notification_previous_ids(*, ids: list[int]) -> dict[int, int]:
    """The id before each notification in its recipient's stream (0: none), in one query."""
    before = (
        Notification.objects.filter(recipient_id=OuterRef("recipient_id"), id__lt=OuterRef("id"))
        .order_by("-id")
        .values("id")[:1]
    )
    rows = (
        Notification.objects.filter(id__in=id_set(ids))
        .order_by()
        .annotate(prev=Subquery(before))
        .values_list("id", "prev")
    )
    return {pk: prev or 0 for pk, prev in rows}


def read_change_payload(
    change: ReadChange, *, unread: int, unseen: int, newest: int
) -> dict[str, Any]:
    """The wire format of `event: read` and the other inbox changes (`event:` is the
    change's action), counts from inbox_counts; `announcement_ids` only when some were
    read; `seen` has no ids."""
    payload: dict[str, Any] = {
        "ids": change.notification_ids,
        "unread": unread,
        "unseen": unseen,
        "newest": newest,
    }
    if change.action == "seen":
        del payload["ids"]
    if change.announcement_ids:
        payload["announcement_ids"] = change.announcement_ids
    return payload


def announcement_payload(announcement: Announcement) -> dict[str, Any]:
    """The wire format of `event: announcement`; created_at is when it was published."""
    expires = announcement.expires_at
    return {
        "id": announcement.pk,
        "title": announcement.title,
        "body": announcement.body,
        "kind": announcement.kind,
        "level": announcement.level,
        "created_at": announcement.published_at.isoformat(),
        "expires_at": expires.isoformat() if expires else None,
    }


def announcement_expired_payload(announcement: Announcement) -> dict[str, Any]:
    """The wire format of `event: announcement-expired`."""
    return {"id": announcement.pk}


def announcement_list(*, user_id: int, unread: bool = False) -> list[dict[str, Any]]:
    """The user's unexpired announcements, newest first, each with its read state."""
    qs = Announcement.objects.filter(_visible_to(user_id, timezone.now())).annotate(
        is_read=_read_by(user_id)
    )
    if unread:
        qs = qs.filter(is_read=False)
    rows = qs.order_by("-sequence")[:MAX_ANNOUNCEMENTS]
    return [{**announcement_payload(a), "read": a.is_read} for a in rows]


def announcement_is_visible(*, user_id: int, announcement_id: int) -> bool:
    return (
        Announcement.objects.filter(pk=announcement_id)
        .filter(_visible_to(user_id, timezone.now()))
        .exists()
    )


def announcement_unread_ids(*, user_id: int) -> list[int]:
    return list(
        Announcement.objects.filter(_visible_to(user_id, timezone.now()))
        .filter(~_read_by(user_id))
        .order_by("sequence")
        .values_list("pk", flat=True)
    )


def announcements_with_stats(qs: QuerySet) -> QuerySet:
    """Annotate `audience_size` (active users it reaches), `muted_count` (of those, who
    turned its category off and are not shown it) and `read_count`, in the same query."""
    users = get_user_model().objects.filter(is_active=True)
    members = users.filter(groups__announcements=OuterRef("pk"))
    muting = CategoryPreference.objects.filter(
        user_id=OuterRef("pk"), category=OuterRef(OuterRef("category")), in_app=False
    )
    return qs.annotate(
        audience_size=Case(
            When(audience=Audience.EVERYONE, then=_count(users)),
            default=_count(members, distinct=True),
        ),
        muted_count=Case(
            When(audience=Audience.EVERYONE, then=_count(users.filter(Exists(muting)))),
            default=_count(members.filter(Exists(muting)), distinct=True),
        ),
        read_count=_count(AnnouncementRead.objects.filter(announcement_id=OuterRef("pk"))),
    )


def announcement_muted_count(*, announcement_id: int) -> int:
    """How many of an announcement's audience turned its category off (not shown it)."""
    qs = announcements_with_stats(Announcement.objects.filter(pk=announcement_id))
    return qs.values_list("muted_count", flat=True).first() or 0
