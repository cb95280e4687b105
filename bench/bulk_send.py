"""Benchmark `send_notifications` and `notify()` against a naive `Notification.objects.create` loop.

    python -m bench.bulk_send [--users 100000] [--naive-sample 2000] [--batch-size 2000]

Everything runs in a throwaway temp directory: a fresh SQLite database and a private Redis.
Every contender does the whole job, end to end: rows committed and each notification
published to Redis for live delivery (a subscriber counts what arrives). The naive loop is
measured on a sample and compared as a rate; `send_notifications --all` and then
`notify(<QuerySet of every user>)` each send to all users, from an empty notifications
table. Results are printed and written as JSON to bench/results/bulk_send.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from config.redis_server import EmbeddedRedis  # noqa: E402


def _count_messages(url: str, channel: str, count: Any, last_at: Any) -> None:
    pubsub = redis.Redis.from_url(url).pubsub(ignore_subscribe_messages=True)
    pubsub.psubscribe(channel)
    count.value = -1  # subscribed
    try:
        for message in pubsub.listen():
            if message["type"] == "pmessage":
                count.value += 1
                last_at.value = time.perf_counter()
    except (redis.RedisError, OSError):
        pass  # Redis stopped at the end of the run


class Subscriber:
    """Counts the live messages the services publish, in its own process as a server would."""

    def __init__(self, url: str, channel: str) -> None:
        ctx = multiprocessing.get_context("fork")
        self._count = ctx.Value("q", 0, lock=False)
        self._last_at = ctx.Value("d", 0.0, lock=False)
        self.process = ctx.Process(
            target=_count_messages, args=(url, channel, self._count, self._last_at), daemon=True
        )
        self.process.start()
        deadline = time.monotonic() + 10
        while self._count.value != -1 and time.monotonic() < deadline:
            time.sleep(0.01)
        self._count.value = 0

    @property
    def count(self) -> int:
        return self._count.value

    def wait_for(self, n: int, timeout: float = 60.0) -> float:
        """Wait until `n` messages have arrived; return when the last one did."""
        deadline = time.monotonic() + timeout
        while self.count < n and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.count < n:
            raise RuntimeError(f"only {self.count} of {n} live messages arrived")
        return self._last_at.value

    def stop(self) -> None:
        self.process.terminate()
        self.process.join(5)


def max_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def setup(tmp: Path, redis_url: str) -> None:
    os.environ.update(
        DJANGO_SETTINGS_MODULE="config.settings",
        DATABASE_URL=f"sqlite:///{tmp / 'bench.sqlite3'}",
        REDIS_URL=redis_url,
        SECRET_KEY="bench-only-secret-key-never-used-in-production-0123456789",
        DEBUG="0",  # DEBUG would record every query in memory
        ALLOWED_HOSTS="localhost",
        LOG_LEVEL="WARNING",
    )
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def create_users(n: int) -> list[int]:
    from django.contrib.auth import get_user_model

    User = get_user_model()
    for start in range(0, n, 5000):
        User.objects.bulk_create(
            User(username=f"user{i:06d}", password="!") for i in range(start, min(n, start + 5000))
        )
    return list(User.objects.order_by("pk").values_list("pk", flat=True))


def naive(user_ids: list[int], subscriber: Subscriber) -> float:
    """One `Notification.objects.create` per recipient (each published on its own commit)."""
    from notifications.models import Notification

    before = subscriber.count
    started = time.perf_counter()
    for user_id in user_ids:
        Notification.objects.create(recipient_id=user_id, title="Naive", body="One at a time")
    done = subscriber.wait_for(before + len(user_ids))
    return len(user_ids) / (done - started)


def delete_notifications() -> None:
    """Empty the table in one statement: a queryset delete would publish a read change for
    each unread row, which the subscriber would count."""
    from django.db import connection

    from notifications.models import Notification

    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Notification._meta.db_table}")


def notify_all(n: int, subscriber: Subscriber) -> tuple[float, float]:
    """`notify()` of a QuerySet of every user, as site code would call it."""
    from django.contrib.auth import get_user_model

    from notifications.api import notify

    before = subscriber.count
    started = time.perf_counter()
    sent = notify(get_user_model().objects.all(), title="Notify", body="Sent with notify()")
    call_done = time.perf_counter()
    delivered = subscriber.wait_for(before + n)
    assert len(sent) == n
    return n / (call_done - started), n / (delivered - started)


def bulk(n: int, batch_size: int, subscriber: Subscriber) -> tuple[float, float, str]:
    from django.core.management import call_command

    from notifications.models import Notification

    before = subscriber.count
    out = StringIO()
    started = time.perf_counter()
    call_command(
        "send_notifications", "--all", "--title", "Bulk", "--body", "Sent in batches",
        "--batch-size", str(batch_size), stdout=out,
    )  # fmt: skip
    command_done = time.perf_counter()
    delivered = subscriber.wait_for(before + n)
    assert Notification.objects.filter(title="Bulk").count() == n
    return n / (command_done - started), n / (delivered - started), out.getvalue().strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--naive-sample", type=int, default=2_000)
    parser.add_argument("--batch-size", type=int, default=2_000)
    parser.add_argument("--json", type=Path, default=ROOT / "bench" / "results" / "bulk_send.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="rtbench-bulk-"))
    embedded = EmbeddedRedis(tmp / "redis.sock").start()
    try:
        setup(tmp, embedded.url)
        # Every user's channel group on the Pulse layer (realtime.layer).
        subscriber = Subscriber(embedded.url, "asgi__group__user-*")
        print(f"creating {args.users:,} users ...", flush=True)
        user_ids = create_users(args.users)

        print(f"naive loop on {args.naive_sample:,} recipients ...", flush=True)
        naive_rate = naive(user_ids[: args.naive_sample], subscriber)
        delete_notifications()

        rss_before = max_rss_mb()
        print(f"send_notifications --all to {args.users:,} users ...", flush=True)
        command_rate, delivered_rate, summary = bulk(args.users, args.batch_size, subscriber)
        rss_after = max_rss_mb()
        delete_notifications()
        print(f"notify() of {args.users:,} users ...", flush=True)
        notify_rate, notify_delivered_rate = notify_all(args.users, subscriber)
        result = {
            "users": args.users,
            "batch_size": args.batch_size,
            "naive_per_s": round(naive_rate),
            "bulk_command_per_s": round(command_rate),
            "bulk_delivered_per_s": round(delivered_rate),
            "ratio": round(delivered_rate / naive_rate, 1),
            "notify_call_per_s": round(notify_rate),
            "notify_delivered_per_s": round(notify_delivered_rate),
            "max_rss_mb_before_send": round(rss_before),
            "max_rss_mb_after_send": round(rss_after),
            "max_rss_mb_after_notify": round(max_rss_mb()),
            "command_summary": summary,
        }
        subscriber.stop()
    finally:
        embedded.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"  command says:        {result['command_summary']}")
    print(f"  naive create loop:   {result['naive_per_s']:>8,} notifications/s")
    print(f"  send_notifications:  {result['bulk_delivered_per_s']:>8,} notifications/s")
    print(f"  notify() many users: {result['notify_delivered_per_s']:>8,} notifications/s")
    print("                       (rows committed, every one published and received)")
    print(f"  ratio:               {result['ratio']:>8}x  (targets: >= 20x, >= 15,000/s)")
    rss = f"{result['max_rss_mb_before_send']} -> {result['max_rss_mb_after_send']}"
    print(f"  peak RSS (MB):       {rss} (send_notifications), ", end="")
    print(f"{result['max_rss_mb_after_notify']} (notify(), which returns every row)")
    out = args.json.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"  written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")


if __name__ == "__main__":
    main()
