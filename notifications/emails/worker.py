"""One pass of the email worker: recover, scan, send what is due, in bounded batches."""

from __future__ import annotations

from django.utils import timezone

from notifications.emails import claims, scan, sending

# Batches per pass: a pass ends even if notifications keep arriving faster than it sends.
MAX_BATCHES = 1000


def run_pass() -> sending.Tally:
    """Send every email due now; return what happened."""
    now = timezone.now()
    tally = sending.Tally()
    _, tally.in_doubt = claims.recover(now=now)
    for _ in range(MAX_BATCHES):
        if not scan.scan_batch(now=now):
            break
    for _ in range(MAX_BATCHES):
        if not sending.send_due_missed(now=now, tally=tally):
            break
    sending.send_due_digests(now=now, tally=tally)
    return tally
