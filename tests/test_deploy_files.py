"""The shipped deployment files: env file complete, systemd units valid, nginx site renders."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.render_nginx import render
from notifications.management.commands.serve import SERVERS, server_command
from tests.support.nginx import Nginx, self_signed_certificate

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
PRODUCT = ("config", "realtime", "notifications", "feeds", "demos", "ticker")
ENV_READERS = {"env_str", "env_bool", "env_int", "env_list", "getenv", "get"}
# Read by settings for the test suite only; a production env file must not set them.
TEST_ONLY = {"TEST_SQLITE_PATH", "FAST_PASSWORD_HASHER"}


def env_vars_read() -> set[str]:
    """Names the product reads from the environment: env_*("X") and os.environ.get("X")."""
    names = set()
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if not (isinstance(node, ast.Call) and node.args):
                    continue
                func, first = node.func, node.args[0]
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name not in ENV_READERS or not isinstance(first, ast.Constant):
                    continue
                if name == "get" and "environ" not in ast.unparse(func):
                    continue
                names.add(first.value)
    return names


def test_the_env_file_documents_every_setting_read_from_the_environment():
    documented = set(
        re.findall(r"^#? ?([A-Z][A-Z0-9_]+)=", (DEPLOY / "pulse.env.example").read_text(), re.M)
    )
    read = env_vars_read()
    assert {"SECRET_KEY", "DATABASE_URL", "REDIS_URL", "TCP_USER_TIMEOUT"} <= read  # the scan works
    assert read - TEST_ONLY - documented == set()
    assert documented & TEST_ONLY == set()
    assert documented - read == set(), "documented but never read"


@pytest.mark.parametrize(
    "unit", ["pulse@.service", "pulse-announcements.service", "pulse-emails.service"]
)
def test_systemd_units_verify(unit, tmp_path):
    # The units name /srv/pulse; here the checkout, whose .venv/bin/python exists.
    text = (DEPLOY / "systemd" / unit).read_text().replace("/srv/pulse", str(ROOT))
    name = unit.replace("@.", "@8001.")  # an instance, as systemctl would start it
    (tmp_path / name).write_text(text)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / name)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Unknown" not in result.stderr, result.stderr


def test_the_server_unit_runs_serve_with_proxy_headers():
    unit = (DEPLOY / "systemd" / "pulse@.service").read_text()
    (command,) = re.findall(r"^ExecStart=(.*)$", unit, re.M)
    assert "manage.py serve --host 127.0.0.1 --port %i --proxy-headers" in command


def test_the_tls_site_passes_nginx_t(tmp_path):
    cert, key = self_signed_certificate(tmp_path)
    nginx = Nginx(["127.0.0.1:8001", "127.0.0.1:8002"], directory=tmp_path, tls=(cert, key))
    nginx.write_config()
    nginx.check()  # nginx -t: parses, loads the certificate, binds nothing
    site = (tmp_path / "pulse.conf").read_text()
    assert "ssl_certificate " in site and "return 301 https://" in site
    assert "# tls:" not in site and "{{" not in site


def test_the_plain_site_has_no_tls():
    site = render(
        upstreams=["127.0.0.1:8001"], listen="80", server_name="a.example", static_root="/s"
    )
    assert "ssl" not in site and "listen 80;" in site
    assert "server 127.0.0.1:8001 max_fails=1" in site


@pytest.mark.parametrize(
    "args, message",
    [
        (["--upstream", "127.0.0.1:8001", "--server-name", "a.example"], "or --no-tls"),
        (["--upstream", "nohost", "--server-name", "a", "--no-tls"], "must be host:port"),
        (["--upstream", "h:1", "--server-name", "a; include /x", "--no-tls"], "may not contain"),
        (["--upstream", "h:1", "--server-name", "a", "--tls-certificate", "/c"], "and its key"),
        (["--upstream", "h:1", "--server-name", "a", "--no-tls", "--metrics-allow", "all"], "CIDR"),
    ],
)
def test_the_renderer_refuses_bad_input_with_a_message(args, message):
    result = subprocess.run(
        [sys.executable, str(DEPLOY / "render_nginx.py"), *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", SERVERS)
def test_serve_trusts_forwarded_headers_only_with_proxy_headers(kind):
    # uvicorn would trust them from 127.0.0.1 by default: serve makes both servers alike.
    behind = server_command(kind, host="127.0.0.1", port=8001, proxy_headers=True)
    direct = server_command(kind, host="127.0.0.1", port=8001)
    assert "--proxy-headers" in behind and "--proxy-headers" not in direct
    assert behind[-1] == direct[-1] == "config.asgi:application"
