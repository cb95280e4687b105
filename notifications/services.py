"""Change notification and announcement state; the only callers of notifications.events."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import IntegrityError, models, transaction
from django.db.models import Max, Q
from django.utils import timezone

from notifications import batch_sql, events, kinds, preferences, selectors
from notifications.emails import claims as email_claims
from notifications.hooks import announcement_deleted, announcement_published
from notifications.models import (
    Announcement,
    AnnouncementRead,
    Audience,
    DeletedAnnouncement,
    InboxAction,
    InboxSeen,
    Level,
    Notification,
    ReadChange,
    validate_link_url,
)
from notifications.storage import announcement_sequence_lock, replay_log_lock
from realtime.wire import CHANNELS_CHANGED

logger = logging.getLogger(__name__)

TITLE_MAX = Notification._meta.get_field("title").max_length
BODY_MAX = 5000
URL_MAX = Notification._meta.get_field("url").max_length
# Rows per transaction and per publish in a bulk send (notify(), send_notifications).
SEND_BATCH_SIZE = 2000


def clean_text(text: str) -> str:
    """Replace NUL, which PostgreSQL cannot store, so every database keeps the same text."""
    return text.replace("\x00", "\ufffd")


def level_of(*, kind: str, level: str | None) -> str:
    """The level a notification of `kind` gets: the one given, else the kind's default.

    Raises kinds.UnknownKind (a ValidationError) for a kind nobody registered.
    """
    default = kinds.get(kind).level
    return default if level is None else level


def notification_check(
    *,
    title: str,
    body: str = "",
    level: str = "info",
    url: str = "",
    actor: Any = None,
    target: models.Model | None = None,
    kind: str = kinds.DEFAULT_KIND,
) -> None:
    """Raise ValidationError with a readable message for content no client should get."""
    kinds.get(kind)
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
    validate_link_url(url)
    if actor is not None and (not isinstance(actor, get_user_model()) or actor.pk is None):
        raise ValidationError("actor must be a saved user")
    if target is not None and (not isinstance(target, models.Model) or target.pk is None):
        raise ValidationError("target must be a saved model instance")


def notification_create(
    *,
    recipient: Any,
    title: str,
    body: str = "",
    kind: str = kinds.DEFAULT_KIND,
    level: str | None = None,
    url: str = "",
    actor: Any = None,
    target: models.Model | None = None,
) -> Notification:
    """Create a notification; the post_save wiring pushes it to the recipient after commit.

    `level` defaults to the kind's; an unknown kind raises kinds.UnknownKind. It does not
    read preferences: callers that choose recipients (notify(), chat mentions) leave out
    who turned the kind's category off (preferences.muted_user_ids). One with a `target`
    collapses into the recipient's unread one of the same kind on the same target from the
    last NOTIFICATION_COLLAPSE_SECONDS: that row is replaced by the one returned.
    """
    title, body = clean_text(title), clean_text(body)
    level = level_of(kind=kind, level=level)
    notification_check(
        title=title, body=body, level=level, url=url, actor=actor, target=target, kind=kind
    )
    content = {"title": title, "body": body, "kind": kind, "level": level, "url": url}
    window = settings.NOTIFICATION_COLLAPSE_SECONDS
    if target is None or not window:
        return Notification.objects.create(
            recipient=recipient, **content, actor=actor, target=target
        )
    with transaction.atomic():
        replay_log_lock(user_ids=[recipient.pk])  # one collapse at a time per recipient
        earlier = _collapsible(recipient=recipient, kind=kind, target=target, seconds=window)
        if earlier is None:
            return Notification.objects.create(
                recipient=recipient, **content, actor=actor, target=target
            )
        return _collapse(earlier, content=content, actor=actor, target=target)


def _collapsible(
    *, recipient: Any, kind: str, target: models.Model, seconds: int
) -> Notification | None:
    """The recipient's unread notification of `kind` on `target` from the last `seconds`."""
    return (
        Notification.objects.filter(
            recipient=recipient,
            kind=kind,
            target_type=ContentType.objects.get_for_model(target),
            target_id=str(target.pk),
            read_at__isnull=True,
            created_at__gte=timezone.now() - timedelta(seconds=seconds),
        )
        .order_by("-id")
        .first()
    )


def _collapse(
    earlier: Notification, *, content: dict[str, Any], actor: Any, target: models.Model
) -> Notification:
    """Replace `earlier` with one newer row standing for both: the row moves to the top,
    counts once on the badge, and its `event: notification` names the row it `replaces`."""
    first = [earlier.actor_id] if earlier.actor_id is not None else []
    actors = list(earlier.collapse_actor_ids or first)
    if actor is not None:
        actors = [pk for pk in actors if pk != actor.pk] + [actor.pk]
    title = collapsed_title(content["title"], actor=actor, others=len(actors) - 1)
    replaces = earlier.pk
    email = email_claims.unsent_for(earlier.pk)  # the delete cascades to it
    # Deleting publishes `event: read` for the earlier row (notification_deleted): older
    # clients then show it read, newer ones drop it on `replaces`.
    earlier.delete()
    survivor = Notification.objects.create(
        recipient_id=earlier.recipient_id,
        **{**content, "title": title},
        actor=actor,
        target=target,
        collapse_count=earlier.collapse_count + 1,
        collapse_actor_ids=actors,
        replaces_id=replaces,
    )
    email_claims.carry_over(email, notification_id=survivor.pk)
    return survivor


def collapsed_title(title: str, *, actor: Any, others: int) -> str:
    """Say who else: `bob replied` from bob and 3 others is `bob and 3 others replied`."""
    if others < 1:
        return title
    more = f"{others} other{'s' if others > 1 else ''}"
    name = actor.get_username() if actor is not None else ""
    if name and title.startswith(f"{name} "):
        title = f"{name} and {more}{title[len(name) :]}"
    else:
        title = f"{title} (and {more})"
    return title[:TITLE_MAX]


def notification_publish(*, notification: Notification) -> None:
    """Publish a freshly saved notification to its recipient's stream after commit."""
    events.notify_user_on_commit(notification=notification)


def notifications_publish_bulk(*, notifications: list[Notification]) -> None:
    """Publish rows inserted in bulk (which sends no post_save) after commit."""
    events.notify_users_on_commit(notifications=notifications)


def user_streams_close(*, user_id: int, session_key: str | None = None) -> None:
    """Close a user's SSE streams everywhere: on logout (that session), on password change
    or deactivation (all of them). Their old cookie is refused when they reconnect."""
    events.streams_close_on_commit(user_id=user_id, session_key=session_key)


def notifications_send_batch(
    *,
    recipient_ids: Sequence[int],
    title: str,
    body: str = "",
    kind: str = kinds.DEFAULT_KIND,
    level: str | None = None,
    url: str = "",
    send_key: str = "",
    actor: Any = None,
    target: models.Model | None = None,
) -> list[Notification]:
    """Create one notification per recipient not yet sent `send_key`, and publish them.

    Recipients who turned the kind's category off get none (preferences.muted_user_ids).
    One transaction per batch: an interrupted bulk send leaves whole batches behind, and a
    rerun with the same key skips exactly their recipients. Without a key, each recipient
    listed gets one (list them once).
    """
    title, body = clean_text(title), clean_text(body)
    level = level_of(kind=kind, level=level)
    notification_check(
        title=title, body=body, level=level, url=url, actor=actor, target=target, kind=kind
    )
    content = {
        "title": title,
        "body": body,
        "kind": kind,
        "level": level,
        "url": url,
        "send_key": send_key,
        **_actor_and_target(actor, target),
    }
    muted = preferences.muted_user_ids(user_ids=recipient_ids, kind=kinds.get(kind))
    recipient_ids = [pk for pk in recipient_ids if pk not in muted]
    if not recipient_ids:
        return []
    with transaction.atomic():
        replay_log_lock(user_ids=recipient_ids)  # each recipient's ids commit in order
        created = batch_sql.notifications_insert(recipient_ids=recipient_ids, content=content)
        notifications_publish_bulk(notifications=created)
    return created


def _actor_and_target(actor: Any, target: models.Model | None) -> dict[str, Any]:
    """The columns notification_create fills from `actor=` and `target=`, for a batch insert."""
    return {
        "actor_id": actor.pk if actor is not None else None,
        "target_type_id": ContentType.objects.get_for_model(target).pk
        if target is not None
        else None,
        "target_id": str(target.pk) if target is not None else None,
    }


def notification_mark_read(*, user: Any, notification_id: int) -> dict[str, int]:
    """Mark one of the user's notifications read; return their badge counts
    (`{"unread", "unseen"}`).

    Raises Notification.DoesNotExist for an id that is not theirs.
    """
    with transaction.atomic():
        if not Notification.objects.filter(id=notification_id, recipient=user).exists():
            raise Notification.DoesNotExist(notification_id)
        _mark(user=user, ids=[notification_id])
    return selectors.badge_count(user_id=user.pk)


def notification_mark_all_read(*, user: Any) -> dict[str, int]:
    """Mark every unread notification and announcement of the user read; return the
    badge counts (0, 0)."""
    with transaction.atomic():
        ids = list(
            Notification.objects.filter(recipient=user, read_at__isnull=True).values_list(
                "id", flat=True
            )
        )
        announcement_ids = selectors.announcement_unread_ids(user_id=user.pk)
        _mark(user=user, ids=ids, announcement_ids=announcement_ids)
    return selectors.badge_count(user_id=user.pk)


def notification_read_at_changed(*, notification: Notification) -> None:
    """After staff set or cleared one notification's read_at: publish the new unread count.

    The read paths above update rows in bulk (no signals) and publish themselves; this is
    for single saves, such as an edit in the admin.
    """
    ids = [notification.pk] if notification.read_at else []
    _read_change_publish(user_id=notification.recipient_id, ids=ids)


def notification_deleted(*, notification: Notification, origin: Any) -> None:
    """After a notification was deleted: its recipient's tabs get the new unread count.

    One `event: read` per recipient for a whole `delete()` call (the admin's bulk delete),
    after commit. A cascade from deleting the recipient publishes nothing.
    """
    deleted_by = origin.model if isinstance(origin, models.QuerySet) else type(origin)
    if deleted_by is not Notification or notification.read_at is not None:
        return
    # The pending ids live on the object being deleted, so a rolled back delete leaves none.
    pending: dict[int, list[int]] | None = getattr(origin, "_rt_unread_deleted", None)
    if pending is None:
        pending = {}
        origin._rt_unread_deleted = pending
        transaction.on_commit(lambda: _read_changes_publish(pending))
    pending.setdefault(notification.recipient_id, []).append(notification.pk)


def _read_changes_publish(ids_by_user: dict[int, list[int]]) -> None:
    for user_id, ids in ids_by_user.items():
        _read_change_publish(user_id=user_id, ids=ids)


def _read_change_publish(
    *,
    user_id: int,
    ids: list[int],
    announcement_ids: Sequence[int] = (),
    action: str = InboxAction.READ,
) -> None:
    """Record one inbox change (the replay log of `event: read`, `archived`, ...) and
    publish it."""
    change = ReadChange.objects.create(
        user_id=user_id,
        action=action,
        notification_ids=sorted(ids),
        announcement_ids=list(announcement_ids),
    )
    events.read_changed_on_commit(change=change)


def group_members_changed(*, user_ids: Iterable[int]) -> None:
    """After users joined or left groups: end their streams, which reconnect with the
    channels of their groups now (a stream's channels are fixed when it opens)."""
    for user_id in user_ids:
        events.streams_close_on_commit(user_id=user_id, session_key=None, reason=CHANNELS_CHANGED)


def announcement_mark_read(*, user: Any, announcement_id: int) -> dict[str, int]:
    """Record that the user read an announcement; return their badge counts.

    Raises Announcement.DoesNotExist for one they are not shown (not theirs, expired, draft).
    """
    with transaction.atomic():
        if not selectors.announcement_is_visible(user_id=user.pk, announcement_id=announcement_id):
            raise Announcement.DoesNotExist(announcement_id)
        _mark(user=user, ids=[], announcement_ids=[announcement_id])
    return selectors.badge_count(user_id=user.pk)


def _mark(*, user: Any, ids: list[int], announcement_ids: Sequence[int] = ()) -> None:
    changed = list(
        Notification.objects.filter(id__in=ids, recipient=user, read_at__isnull=True)
        .order_by("id")
        .values_list("id", flat=True)
    )
    if changed:
        Notification.objects.filter(id__in=changed).update(read_at=timezone.now())
    already = set(
        AnnouncementRead.objects.filter(
            user=user, announcement_id__in=announcement_ids
        ).values_list("announcement_id", flat=True)
    )
    newly_read = [pk for pk in announcement_ids if pk not in already]
    AnnouncementRead.objects.bulk_create(
        [AnnouncementRead(user=user, announcement_id=pk) for pk in newly_read],
        ignore_conflicts=True,  # another tab of the same user, at the same moment
    )
    if changed or newly_read:
        _read_change_publish(user_id=user.pk, ids=changed, announcement_ids=newly_read)


# ---------------------------------------------------------------- inbox states


def _change_one(
    *, user: Any, notification_id: int, change: Callable[[Notification], None]
) -> dict[str, int]:
    """Apply `change` to one of the user's notifications, locked, in a transaction; return
    the badge counts. Raises Notification.DoesNotExist for an id that is not theirs."""
    with transaction.atomic():
        change(Notification.objects.select_for_update().get(id=notification_id, recipient=user))
    return selectors.badge_count(user_id=user.pk)


def _set_state(notification: Notification, action: str, **fields: Any) -> None:
    Notification.objects.filter(pk=notification.pk).update(**fields)
    _read_change_publish(user_id=notification.recipient_id, ids=[notification.pk], action=action)


def notifications_mark_seen(*, user: Any, through: int | None = None) -> dict[str, int]:
    """The bell was opened: everything up to the newest notification it showed (`through`;
    None: the newest of all) is seen, and the badge counts only what comes after. Return
    the badge counts.

    `through` keeps a notification that arrives while the bell's request is on its way
    unseen: the tab did not show it."""
    shown = Notification.objects.filter(recipient=user)
    if through is not None:
        shown = shown.filter(id__lte=through)
    with transaction.atomic():
        newest = shown.aggregate(m=Max("id"))["m"] or 0
        InboxSeen.objects.bulk_create([InboxSeen(user=user)], ignore_conflicts=True)
        moved = InboxSeen.objects.filter(user=user, notification_id__lt=newest).update(
            notification_id=newest, seen_at=timezone.now()
        )
        if moved:
            _read_change_publish(user_id=user.pk, ids=[], action=InboxAction.SEEN)
    return selectors.badge_count(user_id=user.pk)


def notification_mark_unread(*, user: Any, notification_id: int) -> dict[str, int]:
    """Mark one of the user's notifications unread (back in the inbox if it was archived).

    Raises Notification.DoesNotExist for an id that is not theirs.
    """

    def unread(notification: Notification) -> None:
        if notification.read_at is not None:
            _set_state(notification, InboxAction.UNREAD, read_at=None, archived_at=None)

    return _change_one(user=user, notification_id=notification_id, change=unread)


def notification_archive(*, user: Any, notification_id: int) -> dict[str, int]:
    """Move one of the user's notifications out of the inbox; archiving reads it.

    Raises Notification.DoesNotExist for an id that is not theirs.
    """

    def archive(notification: Notification) -> None:
        if notification.archived_at is None:
            _mark(user=user, ids=[notification.pk])  # `event: read` too, for older clients
            _set_state(notification, InboxAction.ARCHIVED, archived_at=timezone.now())

    return _change_one(user=user, notification_id=notification_id, change=archive)


def notification_unarchive(*, user: Any, notification_id: int) -> dict[str, int]:
    """Bring an archived notification back into the inbox (still read).

    Raises Notification.DoesNotExist for an id that is not theirs.
    """

    def unarchive(notification: Notification) -> None:
        if notification.archived_at is not None:
            _set_state(notification, InboxAction.UNARCHIVED, archived_at=None)

    return _change_one(user=user, notification_id=notification_id, change=unarchive)


def notification_delete(*, user: Any, notification_id: int) -> dict[str, int]:
    """Delete one of the user's notifications for good, on all their tabs.

    Raises Notification.DoesNotExist for an id that is not theirs.
    """

    def delete(notification: Notification) -> None:
        notification.delete()  # an unread one also goes out as `event: read` (older clients)
        _read_change_publish(user_id=user.pk, ids=[notification_id], action=InboxAction.DELETED)

    return _change_one(user=user, notification_id=notification_id, change=delete)


# ---------------------------------------------------------------- announcements


def announcement_check(
    *,
    title: str,
    body: str = "",
    level: str = Level.INFO,
    audience: str = Audience.EVERYONE,
    groups: Sequence[Group] = (),
    publish_at: datetime | None = None,
    expires_at: datetime | None = None,
    kind: str = kinds.ANNOUNCEMENT,
) -> None:
    """Raise ValidationError for an announcement that could not be shown as meant."""
    notification_check(title=title, body=body, level=level, kind=kind)
    if audience not in Audience.values:
        raise ValidationError(f"audience must be one of {', '.join(Audience.values)}")
    if audience == Audience.GROUPS and not groups:
        raise ValidationError("choose at least one group, or address it to everyone")
    if expires_at and publish_at and expires_at <= publish_at:
        raise ValidationError("it would expire before it is published")


def announcement_create(
    *,
    title: str,
    body: str = "",
    kind: str = kinds.ANNOUNCEMENT,
    level: str | None = None,
    groups: Sequence[Group] = (),
    publish_at: datetime | None = None,
    expires_at: datetime | None = None,
    created_by: Any = None,
) -> Announcement:
    """Create a draft (no publish_at) or a scheduled announcement; no groups: everyone.

    `level` defaults to the kind's; an unknown kind raises kinds.UnknownKind.
    """
    audience = Audience.GROUPS if groups else Audience.EVERYONE
    level = level_of(kind=kind, level=level)
    announcement_check(
        title=title,
        body=body,
        kind=kind,
        level=level,
        audience=audience,
        groups=groups,
        publish_at=publish_at,
        expires_at=expires_at,
    )
    announcement = Announcement.objects.create(
        title=title,
        body=body,
        kind=kind,
        category=kinds.get(kind).category,
        level=level,
        audience=audience,
        publish_at=publish_at,
        expires_at=expires_at,
        created_by=created_by,
        scheduled_by=created_by if publish_at else None,
    )
    announcement.groups.set(groups)
    return announcement


def announcement_publish(*, announcement: Announcement, by: Any = None) -> bool:
    """Publish once: one row updated, one event per audience channel after commit.

    Returns False if it was already published (by someone else, or a concurrent run).
    Raises ValidationError if it has already expired.
    """
    now = timezone.now()
    if announcement.expires_at and announcement.expires_at <= now:
        raise ValidationError("it has already expired")
    return _in_sequence(lambda: _publish(announcement, by, now))


def _in_sequence(step: Callable[[], bool]) -> bool:
    """Run `step`, which takes the next announcement sequence number, in a transaction."""
    retries = 2
    while True:
        try:
            with transaction.atomic():
                return step()
        except IntegrityError:
            # Two transactions took the same sequence number (concurrent on PostgreSQL):
            # the loser takes the next one.
            if not retries:
                raise
            retries -= 1


def _next_sequence() -> int:
    # Deleted announcements keep their places (DeletedAnnouncement): the sequence of both.
    announcement_sequence_lock()
    last = Announcement.objects.aggregate(m=Max("sequence"))["m"] or 0
    deleted = DeletedAnnouncement.objects.aggregate(m=Max("sequence"))["m"] or 0
    return max(last, deleted) + 1


def _publish(announcement: Announcement, by: Any, now: datetime) -> bool:
    sequence = _next_sequence()
    updated = Announcement.objects.filter(pk=announcement.pk, published_at__isnull=True).update(
        published_at=now, published_by=by, sequence=sequence
    )
    if not updated:
        return False
    announcement.published_at = now
    announcement.published_by = by
    announcement.sequence = sequence
    events.announcement_published_on_commit(announcement=announcement)
    announcement_published.send(sender=Announcement, announcement=announcement)
    logger.info(
        "announcement %s %r published by %s",
        announcement.pk,
        announcement.title,
        by.get_username() if by else "nobody",
    )
    return True


def announcements_publish_due(*, now: datetime | None = None) -> list[Announcement]:
    """Publish every announcement whose publish_at has come; safe to run often and concurrently.

    Each one is recorded as published by whoever scheduled it.
    """
    now = now or timezone.now()
    due = (
        Announcement.objects.filter(published_at__isnull=True, publish_at__lte=now)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .select_related("scheduled_by")
        .order_by("publish_at", "id")
    )
    return [a for a in due if announcement_publish(announcement=a, by=a.scheduled_by)]


def announcement_expire(*, announcement: Announcement) -> bool:
    """Stop showing an announcement now, on pages already open too; False if it was not shown.

    A published one takes the next place in the publish sequence, where
    `event: announcement-expired` goes out: open pages drop it, and a page reconnecting from
    before that place gets the event on replay. Still one event per audience channel.
    """
    return _in_sequence(lambda: _expire(announcement, timezone.now()))


def _expire(announcement: Announcement, now: datetime) -> bool:
    showing = Announcement.objects.filter(pk=announcement.pk).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )
    if showing.filter(sequence__isnull=True).update(expires_at=now):
        announcement.expires_at = now
        return True  # never published: no page has it
    sequence = _next_sequence()
    if not showing.update(expires_at=now, sequence=sequence):
        return False
    announcement.expires_at, announcement.sequence = now, sequence
    events.announcement_expired_on_commit(announcement=announcement)
    return True


def announcement_delete(*, announcement: Announcement, by: Any = None) -> None:
    """Delete an announcement; a published one also leaves open pages and the activity feed.

    Like "Expire now": it takes the next place in the publish sequence, where
    `event: announcement-expired` goes out on its audience channels after commit, and a
    DeletedAnnouncement row keeps that place for replay. Only publishers may do this
    (the admin checks); a draft or a scheduled one is simply deleted.
    """
    if announcement.sequence is None:
        announcement.delete()
        return
    _in_sequence(lambda: _delete(announcement, by))


def _delete(announcement: Announcement, by: Any) -> bool:
    sequence = _next_sequence()
    tombstone = DeletedAnnouncement.objects.create(
        announcement_id=announcement.pk,
        audience=announcement.audience,
        sequence=sequence,
        deleted_by=by,
    )
    tombstone.groups.set(announcement.groups.all())
    # Channels and payload are read now, while the announcement and its groups exist.
    events.announcement_deleted_on_commit(announcement=announcement, sequence=sequence)
    announcement_deleted.send(sender=Announcement, announcement=announcement)
    announcement.delete()
    logger.info("announcement %s %r deleted", tombstone.announcement_id, announcement.title)
    return True
