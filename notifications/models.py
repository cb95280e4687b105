"""A user's notifications and staff announcements; each table is also a replay log."""

import re
from typing import Any

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models, transaction

from notifications.storage import replay_log_lock, replay_log_needs_lock

# A path of this site ("/" then anything but another slash or a backslash: `//host` and
# `/\host` are other hosts to a browser) or an http(s) URL. Kept in step with
# static/notifications/links.js by tests/data/link_urls.json.
_LINK_URL = re.compile(r"/(?![/\\])|https?://", re.IGNORECASE)
_BROWSER_TRIMS = "".join(chr(c) for c in range(0x21))  # C0 controls and space


def as_browser_reads(value: str) -> str:
    """An href as a browser resolves it: outer C0 controls and spaces stripped, tab, LF and
    CR removed everywhere (so `/<TAB>/evil.com` is `//evil.com`)."""
    return value.strip(_BROWSER_TRIMS).translate({9: None, 10: None, 13: None})


def validate_link_url(value: str) -> None:
    """Refuse a link no page can render safely (javascript:, data:, another host's
    `//host`): a path of this site or an http(s) URL."""
    if value and not _LINK_URL.match(as_browser_reads(value)):
        raise ValidationError("url must be a path (/...) or an http(s) URL")


def is_link_url(value: str) -> bool:
    """Whether a stored URL may become an href: rows written around validation may hold any."""
    try:
        validate_link_url(value)
    except ValidationError:
        return False
    return bool(value)


# Longest kind or category name (notifications.kinds).
KIND_MAX = 50


class Level(models.TextChoices):
    INFO = "info", "Info"
    SUCCESS = "success", "Success"
    WARNING = "warning", "Warning"
    ERROR = "error", "Error"


class Notification(models.Model):
    recipient = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notifications"
    )
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, max_length=5000)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    # A registered kind (notifications.kinds); the services refuse unknown ones.
    kind = models.CharField(max_length=KIND_MAX, default="general")
    url = models.CharField(
        "link URL",
        max_length=500,
        blank=True,
        validators=[validate_link_url],
        help_text="A path (/...) or an http(s) URL.",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    target_type = models.ForeignKey(
        ContentType, on_delete=models.CASCADE, null=True, blank=True, related_name="+"
    )
    target_id = models.CharField(max_length=64, null=True, blank=True)  # noqa: DJ001 (GFK key)
    target = GenericForeignKey("target_type", "target_id")
    # Bulk sends tag their rows so a re-run with the same key skips who already has one.
    send_key = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)

    # ---- inbox states and collapse (issue 16 part 5) ----
    # Archived: out of the inbox, and read (archiving reads it; marking unread brings it back).
    archived_at = models.DateTimeField(null=True, blank=True)
    # A collapsed row stands for `collapse_count` notifications of one kind on one target,
    # from these actors (distinct ids, the latest last); it replaced the row `replaces_id`.
    # db_default: batch_sql inserts leave these columns out.
    collapse_count = models.PositiveIntegerField(default=1, db_default=1, editable=False)
    collapse_actor_ids = models.JSONField(null=True, blank=True, editable=False)
    replaces_id = models.PositiveBigIntegerField(null=True, blank=True, editable=False)
    # ---- end of inbox states ----

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["recipient", "-id"], name="notif_recipient_id"),
            # Unread per recipient, and the unseen part of it (`id > seen mark`): with the id
            # in the index, the unseen count of a user without a seen mark does not walk the
            # primary key from 0 (measured: minutes per 2,000 badges at 1,000,000 rows).
            models.Index(
                fields=["recipient", "id"],
                condition=models.Q(read_at__isnull=True),
                name="notif_recipient_unread_id",
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["send_key", "recipient"],
                condition=~models.Q(send_key=""),
                name="notif_unique_send_key_per_recipient",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.title} → {self.recipient_id}"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if not self._state.adding or not replay_log_needs_lock():
            return super().save(*args, **kwargs)
        # Whoever inserts (a service, the admin, the shell), a recipient's notifications
        # commit in id order; a batch insert skips save() and takes the lock itself. Where no
        # lock is needed, no transaction is opened for it either.
        with transaction.atomic(using=kwargs.get("using")):
            replay_log_lock(user_ids=[self.recipient_id])
            super().save(*args, **kwargs)
        return None

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class InboxAction(models.TextChoices):
    """What a ReadChange did; each is replayed as the `event:` of the same name."""

    READ = "read", "Read"
    UNREAD = "unread", "Marked unread"
    SEEN = "seen", "Seen"
    ARCHIVED = "archived", "Archived"
    UNARCHIVED = "unarchived", "Unarchived"
    DELETED = "deleted", "Deleted"


class ReadChange(models.Model):
    """One change of a user's inbox state (read, mark all read, seen, archived, deleted, ...):
    replayed on `user-<id>-read` as the event its action names."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="read_changes"
    )
    action = models.CharField(
        max_length=10, choices=InboxAction.choices, default=InboxAction.READ, db_default="read"
    )
    notification_ids = models.JSONField(default=list)
    announcement_ids = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "id"], name="readchange_user_id")]

    def __str__(self) -> str:
        return f"read {len(self.notification_ids)} for {self.user_id}"


class Audience(models.TextChoices):
    EVERYONE = "everyone", "Everyone"
    GROUPS = "groups", "Members of the chosen groups"


class Announcement(models.Model):
    """A broadcast from staff: one row whatever the audience size.

    Per-user read state lives in AnnouncementRead, written only when someone reads it.
    """

    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, max_length=5000)
    level = models.CharField(max_length=10, choices=Level.choices, default=Level.INFO)
    kind = models.CharField(max_length=KIND_MAX, default="announcement")
    # The kind's category, kept on the row so "who is shown it" stays one SQL query: users
    # who turned the category off in-app are not (notifications.selectors).
    category = models.CharField(max_length=KIND_MAX, default="announcements", editable=False)
    audience = models.CharField(max_length=10, choices=Audience.choices, default=Audience.EVERYONE)
    groups = models.ManyToManyField(
        Group,
        blank=True,
        related_name="announcements",
        help_text="Only used when the audience is members of the chosen groups.",
    )
    publish_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Empty: a draft, published with “Publish now”. Set: published at that time "
        "by manage.py publish_due_announcements.",
    )
    expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this time nobody is shown it any more."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Who set publish_at: a scheduled publish is recorded as theirs.
    scheduled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    published_at = models.DateTimeField(null=True, blank=True, db_index=True)
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Publish order, the event id on the announcement channels: the pk is creation order,
    # and a scheduled announcement may go out after a newer one.
    sequence = models.PositiveBigIntegerField(null=True, blank=True, unique=True, editable=False)

    class Meta:
        ordering = ["-id"]
        permissions = [("publish_announcement", "Can publish announcements")]

    def __str__(self) -> str:
        return self.title

    @property
    def is_published(self) -> bool:
        return self.published_at is not None


class DeletedAnnouncement(models.Model):
    """A published announcement that was deleted: its place in the publish sequence.

    Deleting takes the next place, where `event: announcement-expired` goes out; this row
    keeps it, so a page reconnecting from before it drops the announcement on replay, and
    the sequence never goes back (a client's position stays one the server issued).
    """

    announcement_id = models.PositiveBigIntegerField()
    audience = models.CharField(max_length=10, choices=Audience.choices)
    groups = models.ManyToManyField(Group, blank=True, related_name="+")
    sequence = models.PositiveBigIntegerField(unique=True)
    deleted_at = models.DateTimeField(auto_now_add=True)
    deleted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    def __str__(self) -> str:
        return f"announcement {self.announcement_id} deleted"


class AnnouncementRead(models.Model):
    """That one user has read one announcement (absent: unread, if they are in its audience)."""

    announcement = models.ForeignKey(Announcement, on_delete=models.CASCADE, related_name="reads")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    read_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["announcement", "user"], name="announcement_read_once")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} read {self.announcement_id}"


class EmailMode(models.TextChoices):
    OFF = "off", "Off"
    IMMEDIATE = "immediate", "Immediately, if missed"
    HOURLY = "hourly", "Hourly digest"
    DAILY = "daily", "Daily digest"


class CategoryPreference(models.Model):
    """How one user wants one category of notification kinds; absent: the kinds' defaults."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    category = models.CharField(max_length=KIND_MAX)
    # Off: notifications of the category's mutable kinds are not created for this user.
    in_app = models.BooleanField(default=True)
    email = models.CharField(max_length=10, choices=EmailMode.choices, default=EmailMode.OFF)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "category"], name="category_pref_once"),
        ]
        indexes = [
            # Who of a batch muted a category: (category, in_app=false) then the user ids.
            models.Index(
                fields=["category", "user"],
                condition=models.Q(in_app=False),
                name="category_pref_muted",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.category}"


class NotificationSettings(models.Model):
    """A user's settings across categories: pausing email, quiet hours in their time zone."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", primary_key=True
    )
    pause_email = models.BooleanField(default=False)
    # Quiet hours: both set or both empty; start after end spans midnight (22:00-07:00).
    quiet_start = models.TimeField(null=True, blank=True)
    quiet_end = models.TimeField(null=True, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")

    class Meta:
        verbose_name_plural = "notification settings"

    def __str__(self) -> str:
        return f"settings of {self.user_id}"


# ---------------------------------------------------------------- inbox states (issue 16 part 5)


class InboxSeen(models.Model):
    """How far a user has seen their notifications (the bell was opened): the badge counts
    unread notifications after `notification_id`, plus unread announcements."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", primary_key=True
    )
    notification_id = models.PositiveBigIntegerField(default=0)
    seen_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.user_id} saw through {self.notification_id}"


# --- Email for missed notifications and digests (notifications/emails/) -----------------------


class EmailState(models.TextChoices):
    PENDING = "pending", "Pending"
    CLAIMED = "claimed", "Claimed by a worker"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    SKIPPED = "skipped", "Skipped"
    FAILED = "failed", "Failed"
    # The worker stopped during SMTP DATA: perhaps delivered, so never resent automatically.
    IN_DOUBT = "in_doubt", "In doubt (may have been sent)"


class NotificationEmail(models.Model):
    """The email side of one notification: when it is due, and what became of it.

    One row at most per notification (never two emails for one); made by the worker's scan
    only for notifications whose recipient wants them by email, immediately or in a digest.
    """

    notification = models.OneToOneField(
        Notification, on_delete=models.CASCADE, related_name="email"
    )
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    mode = models.CharField(max_length=10, choices=EmailMode.choices)
    state = models.CharField(max_length=10, choices=EmailState.choices, default=EmailState.PENDING)
    due_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    # Which worker pass holds a claimed/sending row, and until when (then it is taken back).
    claim = models.CharField(max_length=32, blank=True)
    claimed_until = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The due query: pending rows by due time, whatever the table's size.
            models.Index(
                fields=["mode", "due_at"],
                condition=models.Q(state="pending"),
                name="notif_email_due",
            ),
            # Claims whose worker died: few rows, found without a scan.
            models.Index(
                fields=["claimed_until"],
                condition=models.Q(state__in=["claimed", "sending"]),
                name="notif_email_claimed",
            ),
            models.Index(
                fields=["user", "due_at"],
                condition=models.Q(state="pending"),
                name="notif_email_user_due",
            ),
        ]

    def __str__(self) -> str:
        return f"email for notification {self.notification_id}: {self.state}"


class EmailScanCursor(models.Model):
    """How far the email worker has looked through notifications (one row, id 1)."""

    last_notification_id = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"emails scanned up to notification {self.last_notification_id}"
