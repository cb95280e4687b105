"""A user's notifications; the table is also the replay log of their SSE stream."""

from django.conf import settings
from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models


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
    url = models.CharField("link URL", max_length=500, blank=True)
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

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["recipient", "-id"], name="notif_recipient_id"),
            models.Index(
                fields=["recipient"],
                condition=models.Q(read_at__isnull=True),
                name="notif_recipient_unread",
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

    @property
    def is_read(self) -> bool:
        return self.read_at is not None


class ReadChange(models.Model):
    """One change of a user's read state (mark one, mark all): replayed as `event: read`."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="read_changes"
    )
    notification_ids = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        indexes = [models.Index(fields=["user", "id"], name="readchange_user_id")]

    def __str__(self) -> str:
        return f"read {len(self.notification_ids)} for {self.user_id}"
