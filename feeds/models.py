"""Chat rooms and their messages, and the site-wide activity feed."""

from django.conf import settings
from django.db import models

CONTENT_MAX = 2000


class Room(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100)
    is_private = models.BooleanField(default=False)
    members = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="chat_rooms"
    )
    # Members who run a private room with its creator: add, remove and promote members
    # (feeds.membership). Always members too.
    admins = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="chat_rooms_run"
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # Set on a direct-message room only: "<lower user id>:<higher user id>", so the two
    # people have one room between them, found again on every use (feeds.direct).
    direct_key = models.CharField(max_length=41, null=True, blank=True, unique=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Message(models.Model):
    # No index of its own: (room, id) below serves every lookup by room, and with a
    # room-only index beside it PostgreSQL picked that one for "the room's messages after
    # id N" (unread counts) and filtered the whole room instead of reading the range.
    room = models.ForeignKey(
        Room, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_messages"
    )
    content = models.TextField(max_length=CONTENT_MAX)
    # Set by clients so a resend after a reconnect is stored and broadcast once; unique
    # per author and room.
    client_msg_id = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    edited_at = models.DateTimeField(null=True, blank=True)
    # A deleted message stays as a tombstone (content blanked): its id keeps its place in
    # the room's `prev` chain, so backfill stays exactly-once and ordered.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["room", "id"], name="message_room_id")]
        constraints = [
            models.UniqueConstraint(
                fields=["room", "author", "client_msg_id"],
                condition=~models.Q(client_msg_id=""),
                name="message_unique_room_client_msg_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.author_id}@{self.room_id}: {self.content[:40]}"


class Activity(models.Model):
    """One public item of the live feed, or a tombstone; private things are never written here.

    A tombstone (verb `REMOVED`) holds only the ids of items taken out of the feed: it
    takes a place in the `activity` sequence, so pages that showed them, or reconnect
    after it, drop them in order.
    """

    REMOVED = "removed"

    verb = models.CharField(max_length=100)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    target = models.CharField(max_length=200, blank=True)
    url = models.CharField(max_length=500, blank=True)
    removed_ids = models.JSONField(default=list, blank=True)
    # The announcement an ANNOUNCED item tells of: deleting it takes the item out.
    announcement = models.ForeignKey(
        "notifications.Announcement",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
    )
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        verbose_name_plural = "activities"

    def __str__(self) -> str:
        return f"{self.actor_id} {self.verb} {self.target}"


class ReadMarker(models.Model):
    """How far a user has read a room: the newest message id they have seen in it.

    Made when they join a private room or first open any room (feeds.services), and only
    ever moved forward. A room without one has no unread count for the user: a public
    room they never opened is not "unread"."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_read_markers"
    )
    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="read_markers")
    last_read_id = models.BigIntegerField(default=0)

    class Meta:
        # (user, room) is the index the unread counts start from (selectors.unread_counts).
        constraints = [
            models.UniqueConstraint(fields=["user", "room"], name="readmarker_unique_user_room")
        ]

    def __str__(self) -> str:
        return f"{self.user_id}@{self.room_id} read to {self.last_read_id}"


class Reaction(models.Model):
    """One user's emoji on one message: at most one of each emoji per user and message."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reactions")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_reactions"
    )
    emoji = models.CharField(max_length=8)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "user", "emoji"], name="reaction_unique_message_user_emoji"
            )
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.emoji} {self.message_id}"


class RoomMute(models.Model):
    """A member may not post in a room until `until` (feeds.moderation)."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="mutes")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    until = models.DateTimeField()
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="roommute_unique_room_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} muted in {self.room_id} until {self.until:%Y-%m-%d %H:%M}"


class RoomBan(models.Model):
    """A user put out of a room for good: they may not enter or be added again."""

    room = models.ForeignKey(Room, on_delete=models.CASCADE, related_name="bans")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["room", "user"], name="roomban_unique_room_user")
        ]

    def __str__(self) -> str:
        return f"{self.user_id} banned from {self.room_id}"


class Report(models.Model):
    """A member's report of a message, for the staff's queue in the Django admin."""

    message = models.ForeignKey(Message, on_delete=models.CASCADE, related_name="reports")
    reporter = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    reason = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["resolved_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message", "reporter"], name="report_unique_message_reporter"
            )
        ]

    def __str__(self) -> str:
        return f"report of message {self.message_id} by {self.reporter_id}"


class UserBlock(models.Model):
    """`blocker` takes no direct messages and no mentions from `blocked` (feeds.blocking)."""

    blocker = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="chat_blocks"
    )
    blocked = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["blocker", "blocked"], name="userblock_unique_blocker_blocked"
            )
        ]

    def __str__(self) -> str:
        return f"{self.blocker_id} blocks {self.blocked_id}"
