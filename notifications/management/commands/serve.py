"""Run the app with daphne (default) or uvicorn, with a private Redis when none is configured."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.redis_server import EmbeddedRedis
from realtime import probes

# Frames and messages over 64 KiB close the socket with 1009 before the app sees them.
MAX_WS_MESSAGE = 65536
SERVERS = ("daphne", "uvicorn")
# How long the server may take to exit after its drain window (or a second signal).
EXIT_MARGIN_SECONDS = 10
LISTEN_BACKLOG = 2048


def _twisted_host(host: str) -> str:
    """An interface as Twisted's endpoint strings take it (as daphne's -b builds it)."""
    return host.strip("[]").replace(":", r"\:")


def daphne_command(*, host: str, port: int, proxy_headers: bool = False) -> list[str]:
    """daphne through config.daphne_server, which closes oversized messages with 1009."""
    # Behind nginx: the client's address (and scheme) from X-Forwarded-For (-Proto).
    proxy = ["--proxy-headers"] if proxy_headers else []
    return [
        sys.executable, "-m", "config.daphne_server",
        # Twisted listens with a backlog of 50: a burst of reconnects (a rolling restart
        # moves a process's clients to the others) overflowed it under load, and a proxy's
        # connect then timed out. uvicorn's default is 2048.
        "-e", f"tcp:port={port}:interface={_twisted_host(host)}:backlog={LISTEN_BACKLOG}",
        "--websocket-max-message-size", str(MAX_WS_MESSAGE),
        "--websocket-max-frame-size", str(MAX_WS_MESSAGE),
        # Pings stay at 20 s although they are now most of an idle chat socket's cost
        # (docs/performance.md, "Capacity"): the ping is the only data an idle socket
        # sends, so it is what lets TCP_USER_TIMEOUT and the pong timeout drop a vanished
        # peer (and its presence) within 50 s, as SSE's keep-alive does for streams, and
        # what keeps NAT entries and proxies with a 60 s idle timeout from cutting it.
        "--ping-interval", "20", "--ping-timeout", "30",
        "--application-close-timeout", "5",
        # After a restart the process takes thousands of reconnects back at once (~20 s for
        # 2,000 here); the 5 s default dropped chat handshakes still queued, sending those
        # tabs into longer backoffs (tests/e2e/test_faults_restart.py).
        "--websocket_connect_timeout", "60",
        *proxy,
        "config.asgi:application",
    ]  # fmt: skip


def uvicorn_command(*, host: str, port: int, proxy_headers: bool = False) -> list[str]:
    """uvicorn with the same 64 KiB WebSocket cap and pings; its sans-I/O WebSocket
    implementation is the fast one (docs/performance.md)."""
    # uvicorn trusts X-Forwarded-* from 127.0.0.1 by default; only when asked, as daphne.
    proxy = "--proxy-headers" if proxy_headers else "--no-proxy-headers"
    return [
        sys.executable, "-m", "uvicorn",
        "--host", host, "--port", str(port),
        "--ws", "websockets-sansio", "--ws-max-size", str(MAX_WS_MESSAGE),
        # Per-socket compression halves the fan-out rate and doubles idle memory.
        "--ws-per-message-deflate", "false",
        "--ws-ping-interval", "20", "--ws-ping-timeout", "30",
        "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "5",
        proxy,
        "config.asgi:application",
    ]  # fmt: skip


def server_command(kind: str, *, host: str, port: int, proxy_headers: bool = False) -> list[str]:
    if kind == "uvicorn":
        return uvicorn_command(host=host, port=port, proxy_headers=proxy_headers)
    if kind == "daphne":
        return daphne_command(host=host, port=port, proxy_headers=proxy_headers)
    raise ValueError(f"unknown server {kind!r}; choose one of {', '.join(SERVERS)}")


def redis_answers(socket_path: Path) -> bool:
    """True if a Redis (another `serve`, most likely) already answers on this socket."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(1)
            sock.connect(str(socket_path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


class Command(BaseCommand):
    help = "Serve the app with daphne (or --server uvicorn); start a private Redis if needed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--server", choices=SERVERS, default="daphne")
        parser.add_argument(
            "--run-dir",
            type=Path,
            help="where the private Redis keeps its socket (default: .run in the project)",
        )
        parser.add_argument(
            "--proxy-headers",
            action="store_true",
            help="take the client's address and scheme from X-Forwarded-For and "
            "X-Forwarded-Proto: only behind a proxy that sets them (deploy/nginx/pulse.conf)",
        )

    def handle(
        self,
        *args: Any,
        host: str,
        port: int,
        server: str,
        run_dir: Path | None,
        proxy_headers: bool,
        **options: Any,
    ) -> None:
        # A service manager stops with SIGTERM, a closed terminal sends SIGHUP: both stop
        # the server and the private Redis the way Ctrl-C does, instead of orphaning them.
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _interrupt)
        redis = None
        try:
            env = dict(os.environ)
            if not os.environ.get("REDIS_URL") and settings.REDIS_SENTINEL is None:
                redis = self._start_redis((run_dir or settings.RUN_DIR) / "redis.sock")
                env["REDIS_URL"] = settings.REDIS_URL = redis.url
            # Say what is wrong now, in one line, rather than serve errors (realtime/probes.py).
            problem = probes.start_problem()
            if problem:
                raise CommandError(f"cannot start: {problem}")
            command = server_command(server, host=host, port=port, proxy_headers=proxy_headers)
            returncode = self._serve(command, f"{server} serving on http://{host}:{port}/", env)
        except KeyboardInterrupt:
            returncode = None
        finally:
            if redis:
                redis.stop()
        if returncode not in (0, -signal.SIGINT, -signal.SIGTERM, None):
            raise CommandError(f"{server} exited with status {returncode}")

    def _start_redis(self, socket_path: Path) -> EmbeddedRedis:
        # Starting would unlink the socket of a Redis that another instance still uses.
        if redis_answers(socket_path):
            raise CommandError(
                f"a Redis already answers on {socket_path} (another `serve`?): stop it, "
                "or use --run-dir or REDIS_URL"
            )
        redis = EmbeddedRedis(socket_path)
        try:
            redis.start()
        except (RuntimeError, ValueError) as exc:
            raise CommandError(f"could not start the embedded Redis: {exc}") from exc
        self.stdout.write(f"embedded Redis on {redis.url} (set REDIS_URL to use your own)")
        return redis

    def _serve(self, command: list[str], banner: str, env: dict[str, str]) -> int | None:
        self.stdout.write(self.style.SUCCESS(f"{banner} (Ctrl-C stops)"))
        process = subprocess.Popen(command, env=env)
        try:
            process.wait()
        except KeyboardInterrupt:
            # SIGTERM, not SIGINT: a process started with SIGINT ignored (a `&` job of a
            # script) passes that on, and Twisted then leaves SIGINT alone; it always
            # stops on SIGTERM. A Ctrl-C in a terminal has reached the server already.
            # daphne moves its clients off over DRAIN_SECONDS first (realtime/drain.py).
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=settings.DRAIN_SECONDS + EXIT_MARGIN_SECONDS)
            except subprocess.TimeoutExpired:
                pass
            except KeyboardInterrupt:  # a second signal: the server stops at once
                process.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    process.wait(timeout=EXIT_MARGIN_SECONDS)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        return process.returncode
