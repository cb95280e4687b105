"""Publish scheduled announcements whose time has come: from cron every minute, or as a worker."""

from __future__ import annotations

from notifications.management.repeating import RepeatingCommand
from notifications.selectors import announcement_muted_count
from notifications.services import announcements_publish_due


class Command(RepeatingCommand):
    help = (
        "Publish every announcement whose publish_at has passed. Idempotent and safe to run "
        "concurrently: run it every minute from cron, or keep it running with --every."
    )

    every_help = "keep running and check every SECONDS instead of once"

    def run_once(self, verbosity: int) -> None:
        published = announcements_publish_due()
        for announcement in published:
            line = f"published announcement {announcement.pk}: {announcement.title}"
            if muted := announcement_muted_count(announcement_id=announcement.pk):
                line += f" (not shown to {muted} who turned off {announcement.category!r})"
            self.stdout.write(line)
        if not published and verbosity > 1:
            self.stdout.write("nothing due")
