"""Email what users missed and their digests: from cron every minute, or as a worker."""

from __future__ import annotations

from notifications.emails.sending import Tally
from notifications.emails.worker import run_pass
from notifications.management.repeating import RepeatingCommand


class Command(RepeatingCommand):
    help = (
        "Email every notification that is still unread after its kind's delay and was not seen "
        "live, and the hourly/daily digests that are due. Safe to run concurrently and after a "
        "crash: run it every minute from cron, or keep it running with --every."
    )

    every_help = "keep running and send what is due every SECONDS instead of once"

    def run_once(self, verbosity: int) -> None:
        self._report(run_pass(), verbosity)

    def _report(self, tally: Tally, verbosity: int) -> None:
        parts = [f"sent {tally.sent}", f"digests {tally.digests}"]
        parts += [f"skipped {n} ({why})" for why, n in sorted(tally.skipped.items())]
        if tally.retried:
            parts.append(f"will retry {tally.retried}")
        if tally.failed:
            parts.append(f"failed {tally.failed} (see the admin, Notification emails)")
        if tally.in_doubt:
            parts.append(f"in doubt {tally.in_doubt} (a worker died sending them; see the admin)")
        if (
            verbosity > 1
            or tally.sent
            or tally.digests
            or tally.failed
            or tally.retried
            or tally.in_doubt
        ):
            self.stdout.write(", ".join(parts))
