"""How soon a vanished peer is dropped in production, and bad values refusing to start."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHOW = "import config.asgi, realtime.tcp as t; print(t.USER_TIMEOUT_SECONDS, t.KEEPALIVE_SECONDS)"


def load_server_app(**env: str) -> subprocess.CompletedProcess:
    """Import the ASGI application in a fresh process, as daphne and uvicorn do at start."""
    base = {k: v for k, v in os.environ.items() if k != "TCP_USER_TIMEOUT"}
    return subprocess.run(
        [sys.executable, "-c", SHOW],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_a_vanished_peer_is_dropped_within_a_minute_by_default():
    result = load_server_app()
    assert result.returncode == 0, result.stderr
    user_timeout, keepalive = map(int, result.stdout.split())
    assert (user_timeout, keepalive) == (30, 20)
    # Unacknowledged data is in flight within a keep-alive (+1 s hub tick), then times out.
    assert keepalive + 1 + user_timeout < 60


@pytest.mark.parametrize(
    ("value", "message"),
    [("0", "TCP_USER_TIMEOUT must be at least 1 s"), ("30s", "must be an integer")],
)
def test_a_bad_tcp_user_timeout_refuses_to_start(value, message):
    result = load_server_app(TCP_USER_TIMEOUT=value)
    assert result.returncode != 0
    assert message in result.stderr
