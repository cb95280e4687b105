"""Real processes for end-to-end tests: daphne servers on free ports against the test DB."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from django.db import connection

from notifications.management.commands.serve import daphne_command

ROOT = Path(__file__).resolve().parents[2]
# Where this test run keeps its Redis socket, SQLite file and server logs.
RUN_DIR = Path(tempfile.mkdtemp(prefix="rt-"))

# The shared servers let one user hold many connections: fault and fan-out tests open
# hundreds for alice. The caps themselves are tested on servers of their own
# (tests/e2e/test_connection_caps.py).
UNCAPPED = {"SSE_STREAMS_PER_USER": "100000", "CHAT_SOCKETS_PER_USER": "100000"}
# A stopped test server moves its clients off over this long (realtime/drain.py), not the
# 10 s default: tests that restart a server stay quick. Drain tests set their own.
DRAIN_SECONDS = "1"
# How long after its drain window a server may take to exit.
EXIT_MARGIN = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """A DATABASE_URL for the test database that pytest-django created in this process."""
    s = connection.settings_dict
    if s["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{s['NAME']}"
    user = s.get("USER") or ""
    password = f":{s['PASSWORD']}" if s.get("PASSWORD") else ""
    auth = f"{user}{password}@" if user else ""
    host = s.get("HOST") or "localhost"
    port = f":{s['PORT']}" if s.get("PORT") else ""
    return f"postgres://{auth}{host}{port}/{s['NAME']}"


# How daphne ("[Errno 98] Address already in use.") and uvicorn say a port is taken.
_ADDRESS_IN_USE = b"address already in use"


class PortTaken(RuntimeError):
    """The server could not bind its port: another socket holds it."""


class Server:
    """One daphne process serving config.asgi on <host>:<port>. Subclasses change what runs
    (`command`) and with what settings (`environment`); starting and stopping stay here."""

    host = "127.0.0.1"

    def __init__(
        self,
        *,
        redis_url: str,
        log_path: Path,
        extra_args: tuple[str, ...] = (),
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = self._picked_port = free_port()
        self.redis_url = redis_url
        self.log_path = log_path
        self.extra_args = extra_args
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def command(self) -> list[str]:
        command = daphne_command(host=self.host, port=self.port)
        # Later flags win in argparse; the application stays last.
        command[-1:-1] = list(self.extra_args)
        return command

    def environment(self) -> dict[str, str]:
        return dict(
            os.environ,
            DATABASE_URL=database_url(),
            REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
            **self.env,
        )

    def _environment(self) -> dict[str, str]:
        """environment(), with the tests' short drain unless it sets one."""
        return {"DRAIN_SECONDS": DRAIN_SECONDS, **self.environment()}

    @property
    def drain_seconds(self) -> float:
        return float(self._environment()["DRAIN_SECONDS"])

    def start(self, timeout: float = 30.0) -> Server:
        """Start the process and wait until it listens.

        A port from free_port() is free only until someone binds it: a client socket of this
        or another test process (pytest-xdist workers, other runs) can take it before the
        server does. A first start on a port picked here then tries another port, twice;
        a port someone chose, or a restart on the same one, is not moved.
        """
        for _ in range(2):
            if self.process is not None or self.port != getattr(self, "_picked_port", None):
                break
            try:
                return self._start(timeout)
            except PortTaken:
                self.port = self._picked_port = free_port()
                self.process = None
        return self._start(timeout)

    def _start(self, timeout: float) -> Server:
        log_start = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self._environment(),
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.log.close()
                if _ADDRESS_IN_USE in self.log_path.read_bytes()[log_start:].lower():
                    raise PortTaken(f"port {self.port} was taken: see {self.log_path}")
                raise RuntimeError(f"the server exited: see {self.log_path}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"the server did not listen on {self.port} within {timeout} s")

    def stop(self) -> None:
        """SIGTERM, then wait for the drain (killed if it overruns its window)."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=self.drain_seconds + EXIT_MARGIN)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if getattr(self, "log", None):
            self.log.close()


@contextmanager
def server_processes(
    count: int,
    *,
    redis_url: str,
    name: str,
    extra_args: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
) -> Iterator[list[Server]]:
    """`count` server processes on one Redis and the test database (logs in RUN_DIR as
    server-<name>-<i>.log), started in turn and all stopped at the end."""
    servers = [
        Server(
            redis_url=redis_url,
            log_path=RUN_DIR / f"server-{name}-{i}.log",
            extra_args=extra_args,
            env=env,
        )
        for i in range(count)
    ]
    try:
        for server in servers:
            server.start()
        yield servers
    finally:
        for server in servers:
            server.stop()


def run_manage(
    *args: str, redis_url: str, timeout: float = 60, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    """Run `manage.py <args>` in its own process against the test database."""
    env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=redis_url, **(env or {}))
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start_manage(
    *args: str, redis_url: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """`manage.py <args>` in its own process against the test database, not waited for."""
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        REDIS_URL=redis_url,
        PYTHONUNBUFFERED="1",
        **(env or {}),
    )
    return subprocess.Popen(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        preexec_fn=_as_from_a_terminal,
    )


def _as_from_a_terminal() -> None:
    """Ctrl-C reaches the command, as in a terminal, even where this test run was started in
    the background with SIGINT ignored (a shell's `cmd &`), which children inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def create_in_another_process(
    username: str, *, redis_url: str, **fields: str
) -> subprocess.CompletedProcess:
    """notification_create(recipient=<username>, **fields) in a `manage.py shell` process."""
    code = (
        "from django.contrib.auth.models import User;"
        "from notifications.services import notification_create;"
        f"notification_create(recipient=User.objects.get(username={username!r}), **{fields!r})"
    )
    return run_manage("shell", "-c", code, redis_url=redis_url)
