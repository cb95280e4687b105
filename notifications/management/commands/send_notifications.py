"""Send one personal notification to many users, in batches, live to whoever is connected."""

from __future__ import annotations

import contextlib
import secrets
import signal
import threading
import time
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, OutputWrapper
from django.utils import timezone

from notifications import kinds, preferences, recipients
from notifications.models import Level, Notification
from notifications.services import (
    SEND_BATCH_SIZE,
    level_of,
    notification_check,
    notifications_send_batch,
)

KEY_MAX = Notification._meta.get_field("send_key").max_length
MAX_BATCH = 10_000


class ProgressBar:
    """One self-rewriting terminal line: bar, share, count, rate."""

    WIDTH = 30

    def __init__(self, out: OutputWrapper, total: int) -> None:
        self.out = out
        self.total = total
        self.started = time.monotonic()

    def update(self, done: int, sent: int) -> None:
        share = done / self.total if self.total else 1.0
        filled = round(self.WIDTH * share)
        rate = sent / max(time.monotonic() - self.started, 1e-6)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        line = f"\r[{bar}] {share:4.0%}  {done:,}/{self.total:,}  {rate:,.0f}/s "
        self.out.write(line, ending="")
        self.out.flush()

    def finish(self) -> None:
        self.out.write("")


@contextlib.contextmanager
def batch_finishes_on_ctrl_c() -> Iterator[list[int]]:
    """On the first Ctrl-C, note it (the caller stops after the batch in flight); a second
    one interrupts at once. Stopping mid-batch could leave a committed batch unpublished
    and the printed count short of what was written."""
    requested: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield requested  # signal handlers can only be set in the main thread
        return

    def note(signum: int, frame: Any) -> None:
        if requested:
            raise KeyboardInterrupt
        requested.append(signum)

    previous = signal.signal(signal.SIGINT, note)
    try:
        yield requested
    finally:
        signal.signal(signal.SIGINT, previous)


class Command(BaseCommand):
    help = (
        "Send a notification to every recipient (--all, --group, --users or --file), in "
        "batches; connected recipients get it live. Rerun with the same --key to resume."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--title", required=True)
        parser.add_argument("--body", default="")
        parser.add_argument(
            "--kind",
            default=kinds.ANNOUNCEMENT,
            help=f"a registered notification kind (default: {kinds.ANNOUNCEMENT})",
        )
        parser.add_argument(
            "--level", choices=Level.values, default=None, help="default: the kind's level"
        )
        parser.add_argument("--url", default="", help="a path (/...) or an http(s) URL")
        audience = parser.add_mutually_exclusive_group(required=True)
        audience.add_argument("--all", action="store_true", help="every active user")
        audience.add_argument(
            "--group", nargs="+", action="extend", metavar="NAME", help="members of these groups"
        )
        audience.add_argument(
            "--users",
            nargs="+",
            action="extend",
            metavar="NAME,NAME",
            help="usernames, comma- or space-separated",
        )
        audience.add_argument(
            "--file",
            metavar="users.csv",
            help="a CSV file: one username per line, or a header row with a `username` column",
        )
        parser.add_argument("--batch-size", type=int, default=SEND_BATCH_SIZE, metavar="N")
        parser.add_argument(
            "--key",
            default="",
            metavar="IDEMPOTENCY_KEY",
            help="recipients who already got a notification with this key are skipped "
            "(default: a new key; the key is printed on stderr when sending starts)",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="print the recipients; write nothing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._check(options)
        try:
            audience = self._audience(options)
            total = audience.count()
        except recipients.AudienceError as exc:
            raise CommandError(str(exc)) from exc
        if not total:
            raise CommandError(f"no recipients: {audience.description} has no active users")
        if audience.inactive:
            names = ", ".join(audience.inactive)
            self.stderr.write(
                f"skipping inactive user{'s' if len(audience.inactive) > 1 else ''}: {names}"
            )
        key = options["key"] or f"send-{timezone.now():%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        already = audience.already_sent(key) if options["key"] else 0
        if options["dry_run"]:
            self._dry_run(audience, total, already, key)
        elif already == total:
            self.stdout.write(f"nothing to send: all {total} recipients already have key {key}")
        else:
            self._send(audience, total, key, options)

    def _check(self, options: dict[str, Any]) -> None:
        try:
            options["level"] = level_of(kind=options["kind"], level=options["level"])
            notification_check(
                title=options["title"],
                body=options["body"],
                kind=options["kind"],
                level=options["level"],
                url=options["url"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        if not 1 <= options["batch_size"] <= MAX_BATCH:
            raise CommandError(f"--batch-size must be between 1 and {MAX_BATCH}")
        key = options["key"]
        if key and (len(key) > KEY_MAX or not key.isprintable() or key != key.strip()):
            raise CommandError(
                f"--key must be printable, without outer spaces, at most {KEY_MAX} characters"
            )

    def _audience(self, options: dict[str, Any]) -> recipients.Recipients:
        if options["all"]:
            return recipients.everyone()
        if options["group"]:
            return recipients.group_members(options["group"])
        if options["users"]:
            names = recipients.usernames_argument(options["users"])
            return recipients.named_users(names, description="the named users")
        path = options["file"]
        return recipients.named_users(recipients.usernames_csv(path), description=path)

    def _dry_run(self, audience: recipients.Recipients, total: int, already: int, key: str) -> None:
        self.stdout.write(f"dry run, nothing written: {total} recipients ({audience.description})")
        if already:
            self.stdout.write(f"{already} already have key {key} and would be skipped")
        sample = audience.sample()
        more = ", ..." if total > len(sample) else ""
        self.stdout.write(f"sample: {', '.join(sample)}{more}")

    def _send(
        self, audience: recipients.Recipients, total: int, key: str, options: dict[str, Any]
    ) -> None:
        # Printed before the first batch: a run killed outright (SIGKILL, OOM, a lost
        # terminal) prints nothing more, and the key is what resumes it.
        self.stderr.write(
            f"sending to {total} recipients with key {key}; if this run stops, rerun with "
            f"--key {key} (nobody gets two)"
        )
        self.stderr.flush()
        bar = ProgressBar(self.stdout, total) if self.stdout.isatty() else None
        started = time.monotonic()
        done = sent = muted = 0
        kind = kinds.get(options["kind"])
        try:
            with batch_finishes_on_ctrl_c() as ctrl_c:
                for batch in audience.batches(options["batch_size"]):
                    # Counted for the report; the service leaves the same users out.
                    muted += len(preferences.muted_user_ids(user_ids=batch, kind=kind))
                    created = notifications_send_batch(
                        recipient_ids=batch,
                        title=options["title"],
                        body=options["body"],
                        kind=options["kind"],
                        level=options["level"],
                        url=options["url"],
                        send_key=key,
                    )
                    done += len(batch)
                    sent += len(created)
                    if bar:
                        bar.update(done, sent)
                    if ctrl_c:
                        raise KeyboardInterrupt
        except BaseException as exc:
            if bar:
                bar.finish()
            hint = (
                f"stopped after {sent} notifications; to send to the rest (nobody gets two), "
                f"run the same command with --key {key}"
            )
            if isinstance(exc, KeyboardInterrupt):
                raise CommandError(f"interrupted: {hint}", returncode=130) from None
            self.stderr.write(hint)
            raise
        if bar:
            bar.finish()
        elapsed = time.monotonic() - started
        rate = sent / elapsed if elapsed else 0.0
        self.stdout.write(
            f"sent {sent} notifications to {sent} users in {elapsed:.1f} s ({rate:.0f}/s)"
        )
        if muted:
            self.stdout.write(
                f"skipped {muted} who turned off {kind.category!r} notifications ({kind.name})"
            )
        if done > sent + muted:
            self.stdout.write(f"skipped {done - sent - muted} who already had key {key}")
