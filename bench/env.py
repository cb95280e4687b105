"""A throwaway world for one benchmark run: Redis, a migrated SQLite database, users with
sessions, and server processes (daphne or uvicorn) on loopback ports.

Everything lives in one temp directory that is removed at the end. Django is set up in
this (the orchestrating) process against the same database and Redis, so the publisher
can use the real services and channel layer.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
SERVERS = ("daphne", "uvicorn")
# `daphne config.asgi:application` as the Channels and daphne docs start it (no launcher).
PLAIN_DAPHNE = "daphne-plain"
SECRET = "bench-only-secret-key-never-used-in-production-0123456789abcdef"
# The stock django-eventstream baseline's settings: a server or publisher started with them
# is the baseline, not the product (bench/settings.py).
STOCK_SETTINGS = "bench.settings"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit() -> int:
    """Lift the soft open-files limit to the hard one (10,000 sockets need it)."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def server_command(kind: str, port: int) -> list[str]:
    """The command line of one ASGI server process serving config.asgi on 127.0.0.1:
    `manage.py serve`'s (the production command), or plain daphne's."""
    if kind == PLAIN_DAPHNE:
        host = ["-b", "127.0.0.1", "-p", str(port)]
        return [sys.executable, "-m", "daphne", *host, "config.asgi:application"]
    from notifications.management.commands.serve import server_command as serve_command

    return serve_command(kind, host="127.0.0.1", port=port)


@dataclass
class ServerProcess:
    kind: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    label: str = ""
    ps: psutil.Process = field(init=False)

    def __post_init__(self) -> None:
        self.ps = psutil.Process(self.process.pid)

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class BenchEnv:
    """Temp dir + embedded Redis + migrated SQLite + Django configured in this process."""

    def __init__(self, *, keep: bool = False, database_url: str = "") -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="rtbench-"))
        self.keep = keep
        self.db_path = self.dir / "bench.sqlite3"
        # A PostgreSQL server: a throwaway database named after the temp dir is made on it.
        self.server_url = database_url
        self.pg_name = self.dir.name.replace("-", "_").lower()
        self.redis: Any = None
        self.servers: list[ServerProcess] = []

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> BenchEnv:
        from config.redis_server import EmbeddedRedis

        raise_fd_limit()
        self.redis = EmbeddedRedis(self.dir / "redis.sock").start()
        if self.is_postgres:
            self._pg_admin(f'CREATE DATABASE "{self.pg_name}"')
        os.environ.update(self.base_env())
        migrate = subprocess.run(
            [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
            cwd=ROOT,
            env=dict(os.environ),
            capture_output=True,
            text=True,
            timeout=300,
        )
        if migrate.returncode:
            raise RuntimeError(f"migrate failed:\n{migrate.stderr}")
        import django

        django.setup()
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        self.servers.clear()
        if self.redis:
            self.redis.stop()
        if self.is_postgres and not self.keep:
            from django.db import connections

            connections.close_all()
            self._pg_admin(f'DROP DATABASE IF EXISTS "{self.pg_name}" WITH (FORCE)')
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> BenchEnv:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def is_postgres(self) -> bool:
        return self.server_url.startswith(("postgres://", "postgresql://"))

    @property
    def database_url(self) -> str:
        if self.is_postgres:
            return f"{self.server_url.rstrip('/').rsplit('/', 1)[0]}/{self.pg_name}"
        return f"sqlite:///{self.db_path}"

    def _pg_admin(self, sql: str) -> None:
        import psycopg

        admin = f"{self.server_url.rstrip('/').rsplit('/', 1)[0]}/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql)

    def base_env(self) -> dict[str, str]:
        return {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis.url,
            "SECRET_KEY": SECRET,
            "DEBUG": "0",
            "SECURE_SSL": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
        }

    # -- data -----------------------------------------------------------------------------

    def create_users(self, count: int, prefix: str = "bench") -> list[tuple[int, str]]:
        """Create `count` users with one logged-in session each: [(user_id, session_key)]."""
        from notifications.load_users import create_users

        return create_users(count, prefix)

    # -- servers --------------------------------------------------------------------------

    def start_server(
        self, kind: str = "daphne", *, stock: bool = False, label: str = "", timeout: float = 60
    ) -> ServerProcess:
        if kind not in SERVERS:
            raise ValueError(f"server must be one of {SERVERS}")
        port = free_port()
        env = dict(os.environ, **self.base_env())
        if stock:
            env["DJANGO_SETTINGS_MODULE"] = STOCK_SETTINGS
        log_path = self.dir / f"{label or kind}-{port}.log"
        log = open(log_path, "ab")  # noqa: SIM115 - the child holds it; closed with the dir
        process = subprocess.Popen(
            server_command(kind, port),
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            preexec_fn=raise_fd_limit,
        )
        server = ServerProcess(kind, port, process, log_path, label or kind)
        self.servers.append(server)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{kind} exited at start:\n{server.log_tail()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return server
            except OSError:
                time.sleep(0.05)
        server.stop()
        raise RuntimeError(f"{kind} did not listen on {port} within {timeout} s")

    def stop_server(self, server: ServerProcess) -> None:
        server.stop()
        if server in self.servers:
            self.servers.remove(server)
