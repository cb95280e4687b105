"""Publish scheduled announcements whose time has come: from cron every minute, or as a worker."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections

from notifications.selectors import announcement_muted_count
from notifications.services import announcements_publish_due


class Command(BaseCommand):
    help = (
        "Publish every announcement whose publish_at has passed. Idempotent and safe to run "
        "concurrently: run it every minute from cron, or keep it running with --every."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--every",
            type=float,
            metavar="SECONDS",
            help="keep running and check every SECONDS instead of once",
        )

    def handle(self, *args: Any, every: float | None, verbosity: int, **options: Any) -> None:
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds")
        try:
            while True:
                self._publish_due(verbosity)
                if every is None:
                    return
                close_old_connections()
                time.sleep(every)
        except KeyboardInterrupt:
            return

    def _publish_due(self, verbosity: int) -> None:
        published = announcements_publish_due()
        for announcement in published:
            line = f"published announcement {announcement.pk}: {announcement.title}"
            if muted := announcement_muted_count(announcement_id=announcement.pk):
                line += f" (not shown to {muted} who turned off {announcement.category!r})"
            self.stdout.write(line)
        if not published and verbosity > 1:
            self.stdout.write("nothing due")
