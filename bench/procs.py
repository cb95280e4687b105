"""Helper processes a benchmark drives over JSON lines: the load client and the publisher."""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import time
from typing import Any

import psutil

from bench.env import ROOT, STOCK_SETTINGS, BenchEnv, raise_fd_limit


class LineProcess:
    """A child that answers one JSON line per JSON line sent; every wait has a deadline."""

    def __init__(self, module: str, env: dict[str, str], *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=raise_fd_limit,
        )
        self.ps = psutil.Process(self.process.pid)

    def ask(self, timeout: float, **command: Any) -> dict[str, Any]:
        self.send(**command)
        return self.answer(timeout, command.get("cmd", ""))

    def send(self, **command: Any) -> None:
        """Send a command without waiting, so several children work at once; `answer` it."""
        assert self.process.stdin
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def answer(self, timeout: float, cmd: str = "") -> dict[str, Any]:
        """The reply to the command sent last, within `timeout` s."""
        assert self.process.stdout
        ready, _, _ = select.select([self.process.stdout], [], [], max(timeout, 0))
        if not ready:
            self.stop()
            raise TimeoutError(f"{cmd or 'a command'} got no answer within {timeout} s")
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.process.args} exited (status {self.process.poll()})")
        return json.loads(line)

    def cpu_seconds(self) -> float:
        t = self.ps.cpu_times()
        return t.user + t.system

    def stop(self) -> None:
        if self.process.poll() is None:
            with contextlib.suppress(OSError, TimeoutError, RuntimeError, ValueError):
                self.ask(10, cmd="quit")
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class SSELoadClient(LineProcess):
    """bench.sse_client in its own process."""

    def __init__(self, env: BenchEnv) -> None:
        super().__init__("bench.sse_client", dict(os.environ, **env.base_env()))

    def connect(
        self,
        *,
        port: int,
        path: str,
        sessions: list[str],
        concurrency: int = 64,
        last_event_ids: list[str] | None = None,
    ) -> dict[str, Any]:
        timeout = 60 + len(sessions) * 0.05
        resume = {"last_event_ids": last_event_ids} if last_event_ids else {}
        return self.ask(
            timeout,
            cmd="connect",
            port=port,
            path=path,
            sessions=sessions,
            concurrency=concurrency,
            **resume,
        )

    def count(self) -> dict[str, Any]:
        return self.ask(30, cmd="count")

    def stats(self, first: int, last: int) -> dict[str, Any]:
        return self.ask(60, cmd="stats", first=first, last=last)

    def wait_for(self, total: int, *, timeout: float, idle: float = 3.0) -> tuple[int, float]:
        """Poll until `total` deliveries arrived, or none came for `idle` s, or `timeout`.

        Returns (received, seconds until the last delivery was seen)."""
        return wait_for_all([self], total, timeout=timeout, idle=idle)


def wait_for_all(
    clients: list[Any], total: int, *, timeout: float, idle: float = 3.0
) -> tuple[int, float]:
    """Poll load clients until `total` deliveries arrived between them, or none came for
    `idle` s, or `timeout`. Returns (received, seconds until the last delivery was seen)."""

    def received() -> int:
        return sum(client.ask(30, cmd="count")["received"] for client in clients)

    start = last_change = time.monotonic()
    seen = received()
    while seen < total:
        now = time.monotonic()
        if now - start > timeout or now - last_change > idle:
            break
        time.sleep(0.05)
        current = received()
        if current != seen:
            seen, last_change = current, time.monotonic()
    return seen, last_change - start


class Publisher(LineProcess):
    """bench.publisher in its own process, in our mode or the stock django-eventstream mode."""

    def __init__(self, env: BenchEnv, *, mode: str) -> None:
        child_env = dict(os.environ, **env.base_env())
        if mode == "stock":
            child_env["DJANGO_SETTINGS_MODULE"] = STOCK_SETTINGS
        super().__init__("bench.publisher", child_env, mode)
        self.mode = mode
        # The publisher answers once Django is set up.
        self.ask(60, cmd="ping")

    def run(self, **step: Any) -> dict[str, Any]:
        """Publish one ladder step; see bench.publisher for the keys."""
        budget = step["count"] / max(step["rate"], 0.001) + 60
        return self.ask(budget, cmd="publish", **step)
