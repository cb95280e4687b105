"""Benchmark the notification email worker: send rate, the due query's plan, digest memory.

    python -m bench.notification_emails [--quick] [--emails 5000] [--rows 100000,1000000]
        [--digest-users 100000] [--database-url postgres://postgres@127.0.0.1:5432/postgres]

Everything runs in a throwaway world (bench/env.py: a temp dir, a private Redis, SQLite or
a throwaway PostgreSQL database) with a real SMTP server (aiosmtpd) in its own process that
counts what it receives. Three parts:

1. Send rate: `--emails` missed notifications, all due, sent by one worker pass
   (`notifications.emails.worker.run_pass`), against the baseline in the same run: Django's
   `send_mail()` once per notification, as a cron script without the worker would.
2. The due query: the table grown to each size of `--rows` in turn (most rows already
   emailed), the query plans (EXPLAIN ANALYZE on PostgreSQL, EXPLAIN on SQLite) and times
   of the worker's two queries, the cursor scan and the claim of due rows, beside the
   baseline query a worker without the email table would run ("unread, older than the
   delay, not yet emailed"), whose cost grows with the table.
3. Digests: `--digest-users` users with one due daily digest each; peak memory of the
   digest run (tracemalloc, and the process's peak RSS) against the same run for a tenth
   of the users.

Results are printed and written as JSON to bench/results/notification_emails.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
import tracemalloc
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.env import BenchEnv, free_port  # noqa: E402


def _smtp_counter(port: int, count: Any, ready: Any) -> None:
    from aiosmtpd.controller import Controller

    class Count:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            count.value += 1
            return "250 OK"

        def __repr__(self) -> str:
            return "Count()"

    controller = Controller(Count(), hostname="127.0.0.1", port=port)
    controller.start()
    ready.set()
    while True:
        time.sleep(3600)


class SmtpCounter:
    """An aiosmtpd server in its own process (not this one's CPU): counts messages received."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("fork")
        self.port = free_port()
        self._count = ctx.Value("q", 0, lock=False)
        ready = ctx.Event()
        self.process = ctx.Process(
            target=_smtp_counter, args=(self.port, self._count, ready), daemon=True
        )
        self.process.start()
        if not ready.wait(30):
            raise RuntimeError("the SMTP server did not start")

    @property
    def count(self) -> int:
        return self._count.value

    def wait_for(self, n: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.count < n:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.count} of {n} emails arrived")
            time.sleep(0.01)

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


def point_email_at(smtp: SmtpCounter) -> None:
    from django.conf import settings

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", smtp.port


def create_users(count: int, prefix: str) -> list[int]:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    for start in range(0, count, 5000):
        User.objects.bulk_create(
            User(username=f"{prefix}{i:06d}", email=f"{prefix}{i:06d}@example.com", password="!")
            for i in range(start, min(count, start + 5000))
        )
    users = User.objects.filter(username__startswith=prefix)
    return list(users.order_by("pk").values_list("pk", flat=True))


def make_due(user_ids: list[int], title: str) -> None:
    """One notification per user, created 11 minutes ago: due for a missed-email."""
    from django.utils import timezone

    from notifications.models import Notification
    from notifications.services import notifications_send_batch

    for start in range(0, len(user_ids), 2000):
        notifications_send_batch(recipient_ids=user_ids[start : start + 2000], title=title)
    Notification.objects.filter(title=title).update(
        created_at=timezone.now() - timedelta(minutes=11)
    )


def send_rate(emails: int, smtp: SmtpCounter) -> dict[str, Any]:
    from django.core.mail import send_mail

    from notifications.emails.worker import run_pass
    from notifications.models import Notification

    users = create_users(emails, "mail")
    make_due(users, "due for email")
    before = smtp.count
    started = time.perf_counter()
    tally = run_pass()
    smtp.wait_for(before + emails)
    worker_rate = emails / (time.perf_counter() - started)
    assert tally.sent == emails, tally

    sample = Notification.objects.filter(title="due for email").select_related("recipient")
    sample = list(sample[: min(emails, 500)])
    before = smtp.count
    started = time.perf_counter()
    for n in sample:
        send_mail(n.title, n.body, None, [n.recipient.email])
    smtp.wait_for(before + len(sample))
    naive_rate = len(sample) / (time.perf_counter() - started)
    return {
        "emails": emails,
        "worker_per_s": round(worker_rate),
        "send_mail_loop_per_s": round(naive_rate),
        "ratio": round(worker_rate / naive_rate, 1),
    }


def fill_table(rows: int) -> None:
    """Add `rows` unread notifications a day old, 99% emailed already, 1% pending, not yet
    due; the scan cursor then stands after them (they are all scanned)."""
    from django.db import connection

    from notifications.models import EmailScanCursor, Notification, NotificationEmail

    n, e = Notification._meta.db_table, NotificationEmail._meta.db_table
    user = create_users(1, f"bulk{Notification.objects.count()}-")[0]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {n}")
        first = cursor.fetchone()[0]
        cursor.execute(
            f"WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < %s) "
            f"INSERT INTO {n} (recipient_id, title, body, level, kind, url, send_key, created_at) "
            "SELECT %s, 'old', '', 'info', 'general', '', '', %s FROM s",
            [rows, user, _now() - timedelta(days=1)],
        )
        # Pending ones are due in a day: the claim finds nothing due among them.
        cursor.execute(
            f"INSERT INTO {e} (notification_id, user_id, mode, state, due_at, attempts, claim, "
            f"last_error) SELECT id, recipient_id, 'immediate', CASE WHEN id %% 100 = 0 THEN "
            f"'pending' ELSE 'sent' END, CASE WHEN id %% 100 = 0 THEN %s ELSE %s END, 1, '', '' "
            f"FROM {n} WHERE title = 'old' AND id > %s",
            [_now() + timedelta(days=1), _now(), first],
        )
        cursor.execute(f"SELECT MAX(id) FROM {n}")
        last = cursor.fetchone()[0]
    EmailScanCursor.objects.update_or_create(pk=1, defaults={"last_notification_id": last})
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            for table in (n, e):  # one statement each: VACUUM refuses a transaction block
                cursor.execute(f"VACUUM ANALYZE {table}")


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()


def query_plans(sizes: list[int]) -> list[dict[str, Any]]:
    """The worker's queries and the baseline's, with the table grown to each size in turn."""
    from django.db import connection

    from notifications.emails import claims, scan
    from notifications.models import Notification, NotificationEmail

    out = []
    for size in sizes:
        fill_table(size - Notification.objects.filter(title="old").count())
        now = _now()
        scan_query = scan.after_cursor(10**12)  # the scan once it has caught up: nothing new
        pending = NotificationEmail.objects.filter(mode="immediate", due_at__lte=now)
        claim = claims.due_ids(pending, limit=200)
        baseline = (
            Notification.objects.filter(
                read_at__isnull=True,
                created_at__lte=now - timedelta(minutes=10),
                email__isnull=True,
            )
            .order_by("id")
            .values_list("id", flat=True)[:200]
        )
        analyze = {"analyze": True} if connection.vendor == "postgresql" else {}
        result: dict[str, Any] = {"rows": size, "database": connection.vendor}
        for name, qs in (("scan", scan_query), ("claim", claim), ("baseline", baseline)):
            result[name] = {"plan": qs.explain(**analyze), "ms": round(_median_ms(qs), 3)}
        out.append(result)
    return out


def _median_ms(qs: Any, runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        list(qs.all())  # a fresh queryset: not the cached result
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def digest_memory(users: int, smtp: SmtpCounter) -> dict[str, Any]:
    from notifications.emails.worker import run_pass
    from notifications.models import CategoryPreference, Notification

    out = {}
    for label, count in (("tenth", max(users // 10, 1)), ("all", users)):
        ids = create_users(count, f"dg{label}")
        CategoryPreference.objects.bulk_create(
            [CategoryPreference(user_id=u, category="general", email="daily") for u in ids],
            batch_size=5000,
        )
        make_due(ids, f"digest {label}")
        Notification.objects.filter(title=f"digest {label}").update(
            created_at=_now() - timedelta(days=2)
        )
        before = smtp.count
        tracemalloc.start()
        started = time.perf_counter()
        tally = run_pass()
        seconds = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        smtp.wait_for(before + count)
        assert tally.digests == count, tally
        # Peak RSS of the whole process so far (it only grows): bounded if "all" stays close.
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out[label] = {
            "users": count,
            "peak_mb": round(peak / 2**20, 1),
            "max_rss_mb": round(rss),
            "s": round(seconds, 1),
            "digests_per_s": round(count / seconds),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--emails", type=int, default=5000)
    parser.add_argument(
        "--rows",
        type=lambda v: [int(x) for x in v.split(",")],
        default=[100_000, 1_000_000],
        help="table sizes for the query plans, comma-separated, growing",
    )
    parser.add_argument("--digest-users", type=int, default=100_000)
    parser.add_argument("--database-url", default="", help="a PostgreSQL server (else SQLite)")
    parser.add_argument(
        "--json", type=Path, default=ROOT / "bench" / "results" / "notification_emails.json"
    )
    args = parser.parse_args()
    if args.quick:
        args.emails, args.rows, args.digest_users = 300, [2000, 20_000], 1000

    with BenchEnv(database_url=args.database_url) as env:
        smtp = SmtpCounter()
        try:
            point_email_at(smtp)
            # Each part is printed as it ends: a long run that fails later keeps its figures.
            print(f"send rate, {args.emails:,} emails ...", flush=True)
            result: dict[str, Any] = {"send": send_rate(args.emails, smtp)}
            print(json.dumps(result["send"]), flush=True)
            print(f"digests, {args.digest_users:,} users ...", flush=True)
            result["digests"] = digest_memory(args.digest_users, smtp)
            print(json.dumps(result["digests"]), flush=True)
            print(f"query plans, {args.rows} notifications ...", flush=True)
            result["queries"] = query_plans(args.rows)
            result["database"] = "postgresql" if env.is_postgres else "sqlite"
        finally:
            smtp.stop()
    report(result, args.json)


def report(result: dict[str, Any], path: Path) -> None:
    s, q, d = result["send"], result["queries"], result["digests"]
    print(f"  worker pass:        {s['worker_per_s']:>8,} emails/s  (target >= 200)")
    print(f"  send_mail() loop:   {s['send_mail_loop_per_s']:>8,} emails/s  (baseline)")
    print(f"  ratio:              {s['ratio']:>8}x")
    for size in q:
        for name in ("scan", "claim", "baseline"):
            print(
                f"  {name} query, {size['rows']:,} rows ({size['database']}): {size[name]['ms']} ms"
            )
            print("    " + size[name]["plan"].replace("\n", "\n    "))
    for label in ("tenth", "all"):
        r = d[label]
        print(
            f"  digests, {r['users']:>7,} users: traced peak {r['peak_mb']} MB, "
            f"max RSS {r['max_rss_mb']} MB, {r['s']} s ({r['digests_per_s']}/s)"
        )
    out = path.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
