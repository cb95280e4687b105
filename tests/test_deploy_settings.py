"""Production settings: deploy checks clean, safe cookies, no wildcard hosts."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "SECRET_KEY": "k7#production-like-secret-key-with-enough-entropy-0123456789-abcdef",
    "DEBUG": "0",
    "ALLOWED_HOSTS": "pulse.example.com",
}


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("DEBUG", "SECURE_SSL", "SECRET_KEY")}
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "config.settings", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.slow
def test_check_deploy_is_clean_with_production_settings():
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env={**os.environ, **PRODUCTION, "SECURE_SSL": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_cookies_are_httponly_lax_and_secure_under_https():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s;"
        "print(json.dumps([s.SESSION_COOKIE_HTTPONLY, s.SESSION_COOKIE_SAMESITE,"
        " s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT,"
        " s.SECURE_HSTS_SECONDS > 0, s.ALLOWED_HOSTS]))"
    )
    result = run(code, **PRODUCTION)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == [True, "Lax", True, True, True, True, ["pulse.example.com"]]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({**PRODUCTION, "ALLOWED_HOSTS": "*"}, "ALLOWED_HOSTS must name hosts"),
        ({**PRODUCTION, "ALLOWED_HOSTS": "a.example,*"}, "ALLOWED_HOSTS must name hosts"),
        ({"DEBUG": "0", "ALLOWED_HOSTS": "x.example"}, "SECRET_KEY must be set"),
        ({**PRODUCTION, "DEBUG": "maybe"}, "DEBUG must be a boolean"),
        # The password in the URL is not echoed back.
        ({**PRODUCTION, "EMAIL_URL": "smpt://u:secret@h:25"}, "EMAIL_URL must start with smtp"),
    ],
)
def test_unsafe_or_malformed_settings_refuse_to_start(env, message):
    result = run("import django; django.setup()", **env)
    assert result.returncode != 0
    assert message in result.stderr and "secret" not in result.stderr


def test_email_url_configures_django_email():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s;"
        "print(json.dumps([s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_HOST_USER,"
        " s.EMAIL_USE_TLS]))"
    )
    result = run(code, **PRODUCTION, EMAIL_URL="smtp://mailer:pw@mail.example:587?tls=True")
    assert json.loads(result.stdout) == [
        "django.core.mail.backends.smtp.EmailBackend", "mail.example", 587, "mailer", True,
    ]  # fmt: skip
    unset = run(code, **PRODUCTION)
    assert json.loads(unset.stdout)[0] == "django.core.mail.backends.console.EmailBackend"


@pytest.mark.django_db
def test_the_session_cookie_a_browser_gets_is_httponly_and_lax(alice, client):
    client.get("/login/")
    response = client.post(
        "/login/",
        {"username": "alice", "password": "correct-horse-battery-staple"},
    )
    assert response.status_code == 302
    cookie = response.cookies["sessionid"]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"


@pytest.mark.slow
def test_postgresql_connections_come_from_a_bounded_pool_per_process():
    code = (
        "import django, json; django.setup(); from django.conf import settings as s;"
        "print(json.dumps(s.DATABASES['default']['OPTIONS']['pool']))"
    )
    url = "postgres://pulse@db.example:5432/pulse"
    result = run(code, **PRODUCTION, DATABASE_URL=url, DATABASE_POOL_SIZE="7")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["max_size"] == 7

    bad = run(code, **PRODUCTION, DATABASE_URL=url, DATABASE_POOL_SIZE="many")
    assert bad.returncode != 0
    assert "DATABASE_POOL_SIZE must be an integer" in bad.stderr

    zero = run(code, **PRODUCTION, DATABASE_URL=url, DATABASE_POOL_SIZE="0")
    assert "DATABASE_POOL_SIZE must be at least 1" in zero.stderr
