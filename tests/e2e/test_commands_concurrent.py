"""The management commands as real processes: run twice at once, interrupted part way."""

import asyncio
import os
import re
import selectors
import signal
import subprocess
import time
from typing import IO

import pytest
from asgiref.sync import sync_to_async
from django.db.models import Count
from django.utils import timezone

from notifications.models import Announcement, Notification
from notifications.services import announcement_create
from tests.support.factories import make_users, session_cookie
from tests.support.servers import run_manage, start_manage
from tests.support.sse_client import open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def finish(process: subprocess.Popen[bytes], timeout: float = 120) -> tuple[int, str, str]:
    out, err = process.communicate(timeout=timeout)
    return process.returncode, out.decode(), err.decode()


def read_until(pipe: IO[bytes], pattern: str, timeout: float) -> str:
    """What a running process wrote to `pipe` up to a match of `pattern`."""
    seen = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as selector:
        selector.register(pipe, selectors.EVENT_READ)
        while not re.search(pattern, seen.decode(errors="replace")):
            left = deadline - time.monotonic()
            assert left > 0, f"no {pattern!r} within {timeout} s: {seen!r}"
            if selector.select(left):
                chunk = os.read(pipe.fileno(), 65536)
                assert chunk, f"closed before {pattern!r}: {seen!r}"
                seen += chunk
    return seen.decode()


def assert_exactly_one_each(user_count: int, title: str) -> None:
    rows = Notification.objects.filter(title=title)
    assert rows.count() == user_count
    doubled = rows.values("recipient").annotate(n=Count("id")).filter(n__gt=1)
    assert not doubled.exists()


SENT = re.compile(r"^sent (\d+) notifications", re.M)


@pytest.mark.slow
def test_two_sends_with_one_key_at_once_give_everyone_exactly_one(redis_server):
    users = make_users(3000, "many")
    args = ("send_notifications", "--title", "Twice at once", "--all", "--key", "same-key",
            "--batch-size", "50")  # fmt: skip
    runs = [start_manage(*args, redis_url=redis_server.url) for _ in range(2)]
    results = [finish(run) for run in runs]
    for code, _, err in results:
        assert code == 0, err
    assert_exactly_one_each(len(users), "Twice at once")
    sent = [int(m[1]) if (m := SENT.search(out)) else 0 for _, out, _ in results]
    assert sum(sent) == len(users)


@pytest.mark.slow
async def test_concurrent_publish_due_workers_publish_once_with_one_event(
    server, redis_server, alice
):
    # Three workers polling every 20 ms race for the same announcement as soon as it is due.
    workers = [
        start_manage("publish_due_announcements", "--every", "0.02", "-v", "2",
                     redis_url=redis_server.url)
        for _ in range(3)
    ]  # fmt: skip
    stream = await open_stream(server.url, session=await sync_to_async(session_cookie)(alice))
    try:
        for worker in workers:
            await asyncio.to_thread(read_until, worker.stdout, "nothing due", 60)
        due = await sync_to_async(announcement_create)(
            title="Due once", publish_at=timezone.now(), created_by=alice
        )
        (event,) = await stream.collect("announcement", 1)
        assert event.json()["id"] == due.pk
        assert [e.event for e in await stream.quiet(1.0)] == []
        for worker in workers:
            worker.send_signal(signal.SIGINT)
        results = [await asyncio.to_thread(finish, worker, 30) for worker in workers]
        assert [code for code, _, _ in results] == [0, 0, 0], [err for _, _, err in results]
        published = [line for _, out, _ in results for line in out.splitlines()]
        assert [line for line in published if line.startswith("published")] == [
            f"published announcement {due.pk}: Due once"
        ]
        announcement = await Announcement.objects.aget(pk=due.pk)
        assert (announcement.sequence, announcement.published_by_id) == (1, alice.pk)
    finally:
        await stream.close()
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()


@pytest.mark.slow
def test_a_send_interrupted_with_sigint_exits_130_and_resumes_with_its_key(redis_server):
    users = make_users(4000, "many")
    run = start_manage(
        "send_notifications", "--title", "Interrupted", "--all", "--batch-size", "5",
        redis_url=redis_server.url,
    )  # fmt: skip
    try:
        started = read_until(run.stderr, r"with key (\S+);", timeout=60)
        key = re.search(r"with key (\S+);", started)[1]
        deadline = time.monotonic() + 60
        while not Notification.objects.filter(title="Interrupted").exists():
            assert time.monotonic() < deadline, "no batch committed within 60 s"
            time.sleep(0.02)
        run.send_signal(signal.SIGINT)
        code, _, err = finish(run, timeout=30)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    assert code == 130, err
    hint = re.search(r"interrupted: stopped after (\d+) notifications; .* --key (\S+)", err)
    assert hint, err
    stopped_after = int(hint[1])
    assert hint[2] == key
    assert 0 < stopped_after < len(users)
    assert Notification.objects.filter(title="Interrupted").count() == stopped_after

    rerun = run_manage(
        "send_notifications", "--title", "Interrupted", "--all", "--batch-size", "500",
        "--key", key, redis_url=redis_server.url,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr
    assert f"sent {len(users) - stopped_after} notifications" in rerun.stdout
    assert f"skipped {stopped_after} who already had key {key}" in rerun.stdout
    assert_exactly_one_each(len(users), "Interrupted")
