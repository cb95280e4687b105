"""A server that cannot work says why in one line and exits 1 instead of serving errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from notifications.management.commands.serve import daphne_command
from tests.support.servers import ROOT, database_url, free_port

# Each test starts Python processes (~2 s each).
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def start(command: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    """Run a server command to its end (a healthy one would serve: the timeout fails it)."""
    environment = dict(os.environ, DATABASE_URL=database_url(), PYTHONUNBUFFERED="1")
    environment.update(env)
    return subprocess.run(
        command, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def serve(**env: str) -> subprocess.CompletedProcess[str]:
    return start([sys.executable, "manage.py", "serve", "--port", str(free_port())], **env)


def daphne(**env: str) -> subprocess.CompletedProcess[str]:
    return start(daphne_command(host="127.0.0.1", port=free_port()), **env)


def closed_port_url() -> str:
    return f"redis://127.0.0.1:{free_port()}/0"  # nothing listens there


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result
    assert "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    return line


def test_an_unreachable_redis_stops_both_entry_points_with_one_line():
    url = closed_port_url()
    line = one_line(daphne(REDIS_URL=url))
    assert line.startswith("daphne: cannot start: Redis unreachable:")
    assert "Connection refused" in line
    line = one_line(serve(REDIS_URL=url))
    assert line.startswith("CommandError: cannot start: Redis unreachable:")


def test_a_malformed_redis_url_is_named():
    line = one_line(serve(REDIS_URL="http://127.0.0.1:6379/0"))
    assert "REDIS_URL is not valid" in line


def test_an_unreachable_database_is_named(redis_server):
    port = free_port()
    line = one_line(
        daphne(REDIS_URL=redis_server.url, DATABASE_URL=f"postgres://pulse@127.0.0.1:{port}/x")
    )
    assert line.startswith("daphne: cannot start: database unreachable:")
    assert str(port) in line


def test_malformed_settings_are_one_line_too(redis_server):
    line = one_line(daphne(REDIS_URL=redis_server.url, PROMETHEUS_MULTIPROC_DIR="/nonexistent"))
    assert "PROMETHEUS_MULTIPROC_DIR=/nonexistent is not a writable directory" in line
    line = one_line(serve(REDIS_URL=redis_server.url, METRICS_TOKEN="short"))
    assert line == (
        "manage.py: configuration error: METRICS_TOKEN must be at least 16 characters (or unset)"
    )


def test_sentinels_that_do_not_answer_stop_the_server_with_one_line():
    sentinels = f"127.0.0.1:{free_port()},127.0.0.1:{free_port()}"
    line = one_line(daphne(REDIS_URL=f"redis+sentinel://{sentinels}/pulse/0"))
    assert line.startswith("daphne: cannot start: Redis unreachable: No master found for 'pulse'")


def test_a_master_name_the_sentinels_do_not_know_is_named(sentinel_redis):
    sentinels = ",".join(f"127.0.0.1:{s.port}" for s in sentinel_redis.sentinels)
    line = one_line(serve(REDIS_URL="", REDIS_SENTINELS=sentinels, REDIS_SENTINEL_MASTER="nope"))
    assert "Redis unreachable: No master found for 'nope'" in line


def test_a_malformed_sentinel_list_is_one_line():
    line = one_line(serve(REDIS_URL="", REDIS_SENTINELS="127.0.0.1:26379,127.0.0.1:x"))
    assert line == (
        "manage.py: configuration error: REDIS_SENTINELS: '127.0.0.1:x' has no valid port (1-65535)"
    )
