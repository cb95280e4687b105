"""One notification workload over WebSocket, SSE, long polling and short polling, measured.

What `manage.py compare_transports` runs; transport_results keeps what it found. Each
transport in turn gets the same N users (one client each, reading `user-<id>`) and the
same schedule of notifications (R a second for S seconds, each to a user drawn by a fixed
seed), created with notify() as the site creates them. Measured over the window from the
first notification to the last delivery, so connecting is not counted: delivery latency
from the notification's `created_at` to its arrival, bytes both ways at the socket per
delivered event (heads included), requests a second, the server's CPU per delivery,
sockets held, and every client's events checked against what it was sent.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from django.conf import settings

from notifications.api import notify
from realtime.loadclients import Meter, OnEvent, Poller, Target, read_sse, read_websocket

TRANSPORTS = ("websocket", "sse", "longpoll", "shortpoll")
LABELS = {
    "websocket": "WebSocket",
    "sse": "SSE",
    "longpoll": "Long polling",
    "shortpoll": "Short polling",
}
SHORT_POLL_INTERVAL = 1.0  # seconds between one client's short polls
LONG_POLL_WAIT = 25.0
POLL_PATH = "/api/notifications/poll/"
# /ws/events/ joins its groups just after the handshake: publish only once they are joined.
SETTLE_SECONDS = 1.0
DRAIN_SECONDS = 10.0  # the longest the last events may take to arrive
CONNECT_SECONDS = 60.0
CONNECT_CONCURRENCY = 50
SEED = 15
# (transport, seconds elapsed, seconds in all, delivered, sent so far, phase over)
Progress = Callable[[str, float, float, int, int, bool], None]


@dataclass(frozen=True, kw_only=True)
class Workload:
    clients: int
    rate: float
    seconds: float

    def schedule(self) -> list[int]:
        """Which client each notification goes to: the same for every transport."""
        draw = random.Random(SEED)
        return [draw.randrange(self.clients) for _ in range(round(self.rate * self.seconds))]


@dataclass
class Tally:
    """What each client received."""

    clients: int
    opened: int = 0
    received: list[list[int]] = field(init=False)
    latencies: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.received = [[] for _ in range(self.clients)]

    @property
    def delivered(self) -> int:
        return len(self.latencies)

    def listener(self, index: int) -> OnEvent:
        def on_event(event: str, data: Any) -> None:
            if event == "open":
                self.opened += 1
            elif event == "notification":
                created = datetime.fromisoformat(data["created_at"]).timestamp()
                self.latencies.append(time.time() - created)
                self.received[index].append(data["id"])

        return on_event


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


def _path(transport: str, user_id: int) -> str:
    channel = f"channel=user-{user_id}"
    if transport == "websocket":
        return f"/ws/events/?{channel}"
    if transport == "sse":
        return f"/events/?{channel}"
    return f"{POLL_PATH}?{channel}"


class Phase:
    """One transport's clients, connected, then measured over one run of the schedule."""

    def __init__(self, transport: str, users: list[tuple[int, str]], url: str) -> None:
        self.transport = transport
        self.users = users
        self.meter = Meter()
        self.tally = Tally(len(users))
        cookie = settings.SESSION_COOKIE_NAME
        self.targets = [Target.from_url(url, f"{cookie}={key}") for _, key in users]
        self.tasks: list[asyncio.Task[None]] = []
        self.pollers: list[Poller] = []

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
        if self.transport in ("longpoll", "shortpoll"):
            # A first poll with wait=0 pins each cursor, as the README tells clients to.
            self.pollers = [
                Poller(t, self.meter, _path(self.transport, uid), self.tally.listener(i))
                for i, (t, (uid, _)) in enumerate(zip(self.targets, self.users, strict=True))
            ]

            async def pin(poller: Poller) -> None:
                async with gate:
                    await poller.poll(0)

            await asyncio.wait_for(asyncio.gather(*(pin(p) for p in self.pollers)), CONNECT_SECONDS)
            short = self.transport == "shortpoll"
            wait = 0.0 if short else LONG_POLL_WAIT
            interval = SHORT_POLL_INTERVAL if short else 0.0
            for poller in self.pollers:
                # Short polls start spread over one interval, as independent browsers would.
                self.tasks.append(loop.create_task(self._poll(poller, wait, interval)))
            return
        read = read_websocket if self.transport == "websocket" else read_sse
        for i, (target, (uid, _)) in enumerate(zip(self.targets, self.users, strict=True)):
            path = _path(self.transport, uid)
            self.tasks.append(
                loop.create_task(read(target, self.meter, path, self.tally.listener(i)))
            )
        deadline = loop.time() + CONNECT_SECONDS
        while self.tally.opened < len(self.users):
            self.check()
            if loop.time() > deadline:
                raise RuntimeError(f"{self.tally.opened} of {len(self.users)} clients connected")
            await asyncio.sleep(0.05)
        await asyncio.sleep(SETTLE_SECONDS)

    async def _poll(self, poller: Poller, wait: float, interval: float) -> None:
        if interval:
            await asyncio.sleep(random.random() * interval)
        await poller.run(wait=wait, interval=interval)

    def check(self) -> None:
        """Raise what ended a client early (a refused connection, a closed stream)."""
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception():
                raise RuntimeError(f"{self.transport} client failed: {task.exception()}")

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for poller in self.pollers:
            poller.close()


async def run_phase(
    transport: str,
    *,
    users: list[tuple[int, str]],
    url: str,
    workload: Workload,
    publish: Callable[[int, int], Any],
    server_cpu: Callable[[], float] | None,
    progress: Progress,
) -> dict[str, Any]:
    """Connect, send the schedule, wait for every delivery: one row of the comparison."""
    loop = asyncio.get_running_loop()
    phase = Phase(transport, users, url)
    try:
        await phase.connect()
        schedule = workload.schedule()
        expected: list[list[int]] = [[] for _ in users]
        bytes0, requests0 = phase.meter.snapshot()
        cpu0 = server_cpu() if server_cpu else 0.0
        start = loop.time()
        held = 0
        for seq, index in enumerate(schedule):
            await asyncio.sleep(max(0.0, start + seq / workload.rate - loop.time()))
            expected[index].append(await publish(users[index][0], seq))
            phase.check()
            if seq == len(schedule) // 2:
                held = phase.meter.open
            progress(
                transport,
                loop.time() - start,
                workload.seconds,
                phase.tally.delivered,
                seq + 1,
                False,
            )
        deadline = loop.time() + DRAIN_SECONDS
        while phase.tally.delivered < len(schedule) and loop.time() < deadline:
            phase.check()
            await asyncio.sleep(0.05)
        elapsed = loop.time() - start
        cpu = (server_cpu() - cpu0) if server_cpu else None
        bytes1, requests1 = phase.meter.snapshot()
        progress(transport, elapsed, workload.seconds, phase.tally.delivered, len(schedule), True)
    finally:
        await phase.close()
    tally = phase.tally
    lost = sum(
        len(set(want) - set(got)) for want, got in zip(expected, tally.received, strict=True)
    )
    duplicates = sum(len(got) - len(set(got)) for got in tally.received)
    delivered = max(tally.delivered, 1)
    return {
        "transport": transport,
        "label": LABELS[transport],
        "sent": len(schedule),
        "delivered": tally.delivered,
        "lost": lost,
        "duplicates": duplicates,
        "p50_ms": round(percentile(tally.latencies, 0.50) * 1000, 1),
        "p99_ms": round(percentile(tally.latencies, 0.99) * 1000, 1),
        "bytes_per_event": round((bytes1 - bytes0) / delivered),
        "requests_per_s": round((requests1 - requests0) / elapsed, 1),
        "cpu_us_per_delivery": None if cpu is None else round(cpu * 1e6 / delivered),
        "connections": held,
    }


def _publish_one(user_id: int, seq: int) -> int:
    (notification,) = notify(user_id, title=f"compare_transports {seq}")
    return notification.pk


async def compare(
    *,
    users: list[tuple[int, str]],
    url: str,
    workload: Workload,
    server_cpu: Callable[[], float] | None,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Every transport in turn; notify() runs on one thread of its own (one DB connection)."""
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="publish") as pool:

        async def publish(user_id: int, seq: int) -> int:
            return await loop.run_in_executor(pool, _publish_one, user_id, seq)

        rows = []
        for transport in TRANSPORTS:
            rows.append(
                await run_phase(
                    transport,
                    users=users,
                    url=url,
                    workload=workload,
                    publish=publish,
                    server_cpu=server_cpu,
                    progress=progress,
                )
            )
        await loop.run_in_executor(pool, _close_db)
    return rows


def _close_db() -> None:
    from django.db import connections

    connections.close_all()


def result(*, rows: list[dict[str, Any]], workload: Workload, server: str) -> dict[str, Any]:
    """The JSON document `--json` writes and the staff page reads."""
    return {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "server": server,
        "clients": workload.clients,
        "rate": workload.rate,
        "seconds": workload.seconds,
        "short_poll_interval": SHORT_POLL_INTERVAL,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "cpus": os.cpu_count(),
        "transports": rows,
    }


# -- a server of its own ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_server(port: int | None = None) -> Iterator[tuple[str, int]]:
    """A daphne serving this project with this process's settings: (its URL, its pid)."""
    from notifications.management.commands.serve import daphne_command

    port = port or free_port()
    # Its own streams only: it need not spread clients over a drain window when stopped.
    env = dict(
        os.environ,
        DRAIN_SECONDS="0",
        PYTHONUNBUFFERED="1",
        # Plain HTTP on loopback, whatever a deployment's settings say.
        SECURE_SSL="0",
        ALLOWED_HOSTS="127.0.0.1",
    )
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            daphne_command(host="127.0.0.1", port=port),
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_listening(process, port, log)
            yield f"http://127.0.0.1:{port}", process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_listening(process: subprocess.Popen[bytes], port: int, log: Any) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-2000:]
            raise RuntimeError(f"the server exited at start:\n{tail}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the server did not listen on port {port} within 30 s")


def process_cpu(pid: int) -> Callable[[], float] | None:
    """CPU seconds a process has used so far, read from /proc (None where there is none).

    /proc rather than psutil, a test-only dependency: a product command on Linux needs two
    numbers from one file.
    """
    stat = Path(f"/proc/{pid}/stat")
    if not stat.exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")

    def seconds() -> float:
        # Fields after the command name (which may hold spaces): utime and stime are 14, 15.
        fields = stat.read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / ticks

    return seconds
