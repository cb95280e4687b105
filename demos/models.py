"""The shared board demo: a board, its cards, and the log of operations that built it.

Every change to a board is one operation with the next board version (demos.services);
the log is what a reconnecting tab catches up from.
"""

from django.conf import settings
from django.db import models

TEXT_MAX = 200


class Column(models.TextChoices):
    TODO = "todo", "To do"
    DOING = "doing", "Doing"
    DONE = "done", "Done"


class Board(models.Model):
    slug = models.SlugField(max_length=50, unique=True)
    title = models.CharField(max_length=100)
    # The version of the last operation applied; 0 for a new board.
    version = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title


class Card(models.Model):
    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="cards")
    column = models.CharField(max_length=10, choices=Column.choices)
    # 0..n-1 within (board, column), kept dense by demos.services.
    position = models.PositiveIntegerField()
    text = models.CharField(max_length=TEXT_MAX)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["board", "column", "position"]
        indexes = [models.Index(fields=["board", "column", "position"], name="card_board_place")]

    def __str__(self) -> str:
        return self.text[:40]


class BoardOp(models.Model):
    """One applied operation, stored as the frame clients were sent (`payload`)."""

    board = models.ForeignKey(Board, on_delete=models.CASCADE, related_name="ops")
    version = models.PositiveBigIntegerField()
    payload = models.JSONField()
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["board", "version"]
        constraints = [
            models.UniqueConstraint(fields=["board", "version"], name="boardop_unique_version"),
        ]

    def __str__(self) -> str:
        return f"{self.board_id}@{self.version}: {self.payload.get('op')}"
