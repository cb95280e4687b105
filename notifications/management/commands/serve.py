"""Run the app with daphne (default) or uvicorn, with a private Redis when REDIS_URL is unset."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from config.redis_server import EmbeddedRedis

# Frames and messages over 64 KiB close the socket with 1009 before the app sees them.
MAX_WS_MESSAGE = 65536
SERVERS = ("daphne", "uvicorn")


def daphne_command(*, host: str, port: int) -> list[str]:
    """daphne through config.daphne_server, which closes oversized messages with 1009."""
    return [
        sys.executable, "-m", "config.daphne_server",
        "-b", host, "-p", str(port),
        "--websocket-max-message-size", str(MAX_WS_MESSAGE),
        "--websocket-max-frame-size", str(MAX_WS_MESSAGE),
        "--ping-interval", "20", "--ping-timeout", "30",
        "--application-close-timeout", "5",
        # After a restart the process takes thousands of reconnects back at once (~20 s for
        # 2,000 here); the 5 s default dropped chat handshakes still queued, sending those
        # tabs into longer backoffs (tests/e2e/test_faults_restart.py).
        "--websocket_connect_timeout", "60",
        "config.asgi:application",
    ]  # fmt: skip


def uvicorn_command(*, host: str, port: int) -> list[str]:
    """uvicorn with the same 64 KiB WebSocket cap and pings; its sans-I/O WebSocket
    implementation is the fast one (docs/performance.md)."""
    return [
        sys.executable, "-m", "uvicorn",
        "--host", host, "--port", str(port),
        "--ws", "websockets-sansio", "--ws-max-size", str(MAX_WS_MESSAGE),
        # Per-socket compression halves the fan-out rate and doubles idle memory.
        "--ws-per-message-deflate", "false",
        "--ws-ping-interval", "20", "--ws-ping-timeout", "30",
        "--lifespan", "off", "--no-access-log", "--timeout-graceful-shutdown", "5",
        "config.asgi:application",
    ]  # fmt: skip


def server_command(kind: str, *, host: str, port: int) -> list[str]:
    if kind == "uvicorn":
        return uvicorn_command(host=host, port=port)
    if kind == "daphne":
        return daphne_command(host=host, port=port)
    raise ValueError(f"unknown server {kind!r}; choose one of {', '.join(SERVERS)}")


class Command(BaseCommand):
    help = "Serve the app with daphne (or --server uvicorn); start a private Redis if needed."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)
        parser.add_argument("--server", choices=SERVERS, default="daphne")

    def handle(self, *args: Any, host: str, port: int, server: str, **options: Any) -> None:
        redis = None
        env = dict(os.environ)
        if not os.environ.get("REDIS_URL"):
            socket_path = settings.RUN_DIR / "redis.sock"
            redis = EmbeddedRedis(socket_path)
            try:
                redis.start()
            except (RuntimeError, ValueError) as exc:
                raise CommandError(f"could not start the embedded Redis: {exc}") from exc
            self.stdout.write(f"embedded Redis on {redis.url} (set REDIS_URL to use your own)")
            env["REDIS_URL"] = redis.url
        self.stdout.write(
            self.style.SUCCESS(f"{server} serving on http://{host}:{port}/ (Ctrl-C stops)")
        )
        process = subprocess.Popen(server_command(server, host=host, port=port), env=env)
        try:
            process.wait()
        except KeyboardInterrupt:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
            if redis:
                redis.stop()
        if process.returncode not in (0, -signal.SIGINT, None):
            raise CommandError(f"{server} exited with status {process.returncode}")
