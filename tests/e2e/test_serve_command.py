"""`manage.py serve` (what bin/run starts) as a real process: it stops cleanly on the signals
a terminal or service manager sends, and never takes over another instance's Redis."""

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from asgiref.sync import sync_to_async

from config.redis_server import EmbeddedRedis
from tests.support import servers
from tests.support.factories import session_cookie
from tests.support.sentinel import MASTER, SentinelGroup
from tests.support.servers import ROOT, create_in_another_process, free_port
from tests.support.sse_client import open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def run_dir() -> Iterator[Path]:
    # Short: unix socket paths must stay under 104 characters.
    path = Path(tempfile.mkdtemp(prefix="rt-serve-"))
    yield path
    for child in path.iterdir():
        child.unlink()
    path.rmdir()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def start_serve(
    run_dir: Path, port: int, *, sigint_ignored: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"} | (env or {})
    env.update(DATABASE_URL=servers.database_url(), PYTHONUNBUFFERED="1")
    command = [sys.executable, "manage.py", "serve", "--port", str(port), "--run-dir", str(run_dir)]
    return subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # What a `&` job of a script (or some service managers) passes on: SIGINT ignored.
        preexec_fn=_ignore_sigint if sigint_ignored else None,
    )


def children(pid: int) -> list[int]:
    tasks = Path(f"/proc/{pid}/task")
    found: list[int] = []
    for task in tasks.iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except FileNotFoundError:
        return ""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def wait_for_login_page(process: subprocess.Popen[str], port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        try:
            response = httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2)
        except httpx.TransportError:
            time.sleep(0.1)
            continue
        assert response.status_code == 200
        return
    raise AssertionError(f"serve did not answer on {port} within {timeout} s")


@pytest.mark.parametrize(
    ("signum", "sigint_ignored"),
    [(signal.SIGTERM, False), (signal.SIGHUP, False), (signal.SIGTERM, True)],
    ids=["SIGTERM", "SIGHUP", "SIGTERM-started-with-SIGINT-ignored"],
)
@pytest.mark.slow
def test_a_signal_stops_the_server_and_its_redis_like_ctrl_c(run_dir, signum, sigint_ignored):
    port = free_port()
    process = start_serve(run_dir, port, sigint_ignored=sigint_ignored)
    kids: list[int] = []
    try:
        wait_for_login_page(process, port)
        kids = children(process.pid)
        redis_pids = [pid for pid in kids if "redis-server" in command_line(pid)]
        assert len(redis_pids) == 1 and len(kids) == 2, [command_line(p) for p in kids]
        assert (run_dir / "redis.sock").exists()

        process.send_signal(signum)
        process.wait(timeout=10)
        assert process.returncode == 0, process.communicate()
        assert not [pid for pid in kids if alive(pid)]  # neither daphne nor redis-server left
        assert not (run_dir / "redis.sock").exists()
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{port}/login/", timeout=2)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in kids:  # what a failing serve would orphan
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
def test_a_second_instance_leaves_the_first_ones_redis_alone(run_dir):
    first = EmbeddedRedis(run_dir / "redis.sock").start()
    try:
        process = start_serve(run_dir, free_port())
        _, err = process.communicate(timeout=30)
        assert process.returncode == 1
        assert f"a Redis already answers on {run_dir / 'redis.sock'}" in err
        assert first.process.poll() is None and first._ping()  # still there, still answering
    finally:
        first.stop()


@pytest.mark.slow
async def test_with_redis_sentinels_it_starts_no_redis_and_delivers_through_the_primary(
    run_dir, sentinel_redis: SentinelGroup, alice
):
    port = free_port()
    sentinels = ",".join(f"127.0.0.1:{s.port}" for s in sentinel_redis.sentinels)
    env = {"REDIS_SENTINELS": sentinels, "REDIS_SENTINEL_MASTER": MASTER}
    process = start_serve(run_dir, port, env=env)
    kids: list[int] = []
    try:
        await asyncio.to_thread(wait_for_login_page, process, port)
        kids = children(process.pid)
        assert [command_line(p) for p in kids if "redis-server" in command_line(p)] == []
        assert not (run_dir / "redis.sock").exists()

        cookie = await sync_to_async(session_cookie)(alice)
        stream = await open_stream(f"http://127.0.0.1:{port}", session=cookie)
        try:
            created = await asyncio.to_thread(
                create_in_another_process,
                "alice",
                title="via sentinel",
                redis_url=sentinel_redis.url,
            )
            assert created.returncode == 0, created.stderr
            (event,) = await stream.collect("notification", 1, timeout=10)
            assert event.json()["title"] == "via sentinel"
        finally:
            await stream.close()
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(process.wait, 10)
        for pid in kids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    assert "embedded Redis" not in process.communicate()[0]
