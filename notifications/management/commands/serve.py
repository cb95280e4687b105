"""Run daphne on this project, with a private Redis when REDIS_URL is not set."""

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


def daphne_command(*, host: str, port: int) -> list[str]:
    return [
        sys.executable, "-m", "daphne",
        "-b", host, "-p", str(port),
        "--websocket-max-message-size", str(MAX_WS_MESSAGE),
        "--websocket-max-frame-size", str(MAX_WS_MESSAGE),
        "--ping-interval", "20", "--ping-timeout", "30",
        "--application-close-timeout", "5",
        "config.asgi:application",
    ]  # fmt: skip


class Command(BaseCommand):
    help = "Serve the app with daphne; start a private Redis if REDIS_URL is unset."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
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
        self.stdout.write(self.style.SUCCESS(f"serving on http://{host}:{port}/ (Ctrl-C stops)"))
        server = subprocess.Popen(daphne_command(host=host, port=port), env=env)
        try:
            server.wait()
        except KeyboardInterrupt:
            server.send_signal(signal.SIGINT)
            server.wait(timeout=10)
        finally:
            if server.poll() is None:
                server.kill()
            if redis:
                redis.stop()
        if server.returncode not in (0, -signal.SIGINT, None):
            raise CommandError(f"daphne exited with status {server.returncode}")
