"""Sentinel settings: both spellings parse to one setup; malformed ones refuse to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.redis_sentinel import SentinelConfig, from_environment

ROOT = Path(__file__).resolve().parent.parent
SENTINEL_ENV = ("REDIS_SENTINELS", "REDIS_SENTINEL_MASTER", "REDIS_SENTINEL_PASSWORD", "REDIS_DB")


@pytest.fixture(autouse=True)
def _no_sentinel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*SENTINEL_ENV, "REDIS_PASSWORD"):
        monkeypatch.delenv(name, raising=False)


def test_a_plain_redis_url_means_no_sentinel():
    assert from_environment("redis://127.0.0.1:6379/0") is None
    assert from_environment("") is None


def test_the_url_and_the_variables_give_the_same_setup(monkeypatch):
    url = "redis+sentinel://:s3cret@10.0.0.1:26379,10.0.0.2:26380,[::1]/pulse/2"
    expected = SentinelConfig(
        sentinels=(("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26379)),
        master="pulse",
        db=2,
        password="s3cret",
    )
    assert from_environment(url) == expected
    monkeypatch.setenv("REDIS_SENTINELS", " 10.0.0.1:26379, 10.0.0.2:26380 ,[::1]")
    monkeypatch.setenv("REDIS_SENTINEL_MASTER", "pulse")
    monkeypatch.setenv("REDIS_DB", "2")
    monkeypatch.setenv("REDIS_PASSWORD", "s3cret")
    assert from_environment("") == expected


def test_the_sentinels_own_password_comes_from_its_variable(monkeypatch):
    monkeypatch.setenv("REDIS_SENTINEL_PASSWORD", "for-sentinels")
    config = from_environment("redis+sentinel://h:26379/pulse")
    assert (config.password, config.sentinel_password) == (None, "for-sentinels")


@pytest.mark.parametrize(
    ("env", "url", "message"),
    [
        ({"REDIS_SENTINELS": "h1:26379,h2:port"}, "", "'h2:port' has no valid port"),
        ({"REDIS_SENTINELS": "h1:26379,,h2"}, "", "empty entry"),
        ({"REDIS_SENTINELS": "h1:70000"}, "", "has no valid port (1-65535)"),
        ({"REDIS_SENTINELS": ":26379"}, "", "has no valid host"),
        ({"REDIS_SENTINELS": "::1:26379"}, "", "write IPv6 hosts as [addr]:port"),
        ({"REDIS_SENTINELS": ","}, "", "at least one sentinel"),
        ({"REDIS_SENTINELS": "h1:26379"}, "", "REDIS_SENTINEL_MASTER must name"),
        (
            {"REDIS_SENTINELS": "h1", "REDIS_SENTINEL_MASTER": "pulse", "REDIS_DB": "x"},
            "",
            "REDIS_DB must be a database number",
        ),
        ({"REDIS_SENTINEL_MASTER": "pulse"}, "", "REDIS_SENTINELS is not"),
        ({"REDIS_SENTINELS": "h1", "REDIS_SENTINEL_MASTER": "p"}, "redis://r/0", "not both"),
        ({"REDIS_SENTINELS": "h1"}, "redis+sentinel://h1/pulse", "not both"),
        ({}, "redis+sentinel://h1:26379", "ends in /<master name>"),
        ({}, "redis+sentinel://h1:26379/pulse/0/9", "ends in /<master name>"),
        ({}, "redis+sentinel:///pulse", "at least one sentinel"),
        ({}, "redis+sentinel://h1/pulse/zero", "must be a database number"),
        ({}, "redis+sentinel://h1/pulse?db=1", "takes no ?query"),
    ],
)
def test_a_malformed_sentinel_setting_names_what_is_wrong(monkeypatch, env, url, message):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ImproperlyConfigured) as raised:
        from_environment(url)
    assert message in str(raised.value)


def test_a_process_with_a_bad_sentinel_list_exits_non_zero_saying_why():
    env = {k: v for k, v in os.environ.items() if k not in (*SENTINEL_ENV, "REDIS_URL")}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env={**env, "DEBUG": "1", "REDIS_SENTINELS": "127.0.0.1:26379,127.0.0.1:x"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "REDIS_SENTINELS: '127.0.0.1:x' has no valid port" in result.stderr
