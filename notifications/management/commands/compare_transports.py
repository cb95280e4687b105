"""Measure WebSocket, SSE, long polling and short polling side by side on one workload."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError

from notifications import transport_compare as compare
from notifications import transport_results as results
from notifications.load_users import create_users, delete_users
from realtime import probes

MAX_CLIENTS = 5000
MAX_RATE = 1000.0
MAX_SECONDS = 600.0
BAR_WIDTH = 30
REDRAW_SECONDS = 0.25
_drawn = [0.0]  # when the bar was last drawn


class Command(BaseCommand):
    help = (
        "Send R notifications a second for S seconds to N users over each transport in turn "
        "(WebSocket, SSE, long polling, short polling every 1 s) and print the comparison. "
        "Starts its own daphne unless --url names a server that uses this project's "
        "database and Redis (the users and their sessions are made there and deleted after)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--clients", type=int, default=100, help="users, one client each")
        parser.add_argument("--rate", type=float, default=20.0, help="notifications a second")
        parser.add_argument("--seconds", type=float, default=20.0, help="per transport")
        parser.add_argument("--url", default="", help="http://host:port of a running server")
        parser.add_argument("--port", type=int, help="the port of the server it starts")
        parser.add_argument("--json", type=Path, help="also write the result to this file")

    def handle(self, *args: Any, **options: Any) -> None:
        workload = self._workload(options)
        url = options["url"]
        if url:
            parts = urlsplit(url)
            if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
                raise CommandError(f"--url must look like http://host:port, got {url!r}")
        problem = probes.start_problem()
        if problem:
            raise CommandError(f"cannot run: {problem}")
        users = create_users(workload.clients, prefix="compare-transports-")
        try:
            rows = self._run(workload, users, url.rstrip("/"), options["port"])
        finally:
            delete_users(users)
        document = compare.result(rows=rows, workload=workload, server=url or "local daphne")
        results.save_last(document)
        if options["json"]:
            options["json"].write_text(json.dumps(document, indent=2) + "\n")
        self.stdout.write(results.format_table(document))
        if any(row["lost"] or row["duplicates"] for row in rows):
            raise CommandError("events were lost or duplicated: see the table")

    def _workload(self, options: dict[str, Any]) -> compare.Workload:
        clients, rate, seconds = options["clients"], options["rate"], options["seconds"]
        if not 1 <= clients <= MAX_CLIENTS:
            raise CommandError(f"--clients must be 1 to {MAX_CLIENTS}")
        if not 0 < rate <= MAX_RATE:
            raise CommandError(f"--rate must be over 0 and at most {MAX_RATE:g}")
        if not 1 <= seconds <= MAX_SECONDS:
            raise CommandError(f"--seconds must be 1 to {MAX_SECONDS:g}")
        if options["port"] is not None and not 1024 <= options["port"] <= 65535:
            raise CommandError("--port must be 1024 to 65535")
        return compare.Workload(clients=clients, rate=rate, seconds=seconds)

    def _run(
        self, workload: compare.Workload, users: list[tuple[int, str]], url: str, port: int | None
    ) -> list[dict[str, Any]]:
        def measure(url: str, cpu: Any) -> list[dict[str, Any]]:
            run = compare.compare(
                users=users, url=url, workload=workload, server_cpu=cpu, progress=_progress
            )
            return asyncio.run(run)

        try:
            if url:
                return measure(url, None)  # another host's CPU is not ours to read
            with compare.local_server(port) as (local_url, pid):
                return measure(local_url, compare.process_cpu(pid))
        except (RuntimeError, OSError, TimeoutError) as exc:
            raise CommandError(str(exc) or type(exc).__name__) from exc


def _progress(
    transport: str, elapsed: float, total: float, delivered: int, sent: int, over: bool
) -> None:
    """A plain-text progress bar on stderr, redrawn in place a few times a second."""
    now = time.monotonic()
    if not over and now - _drawn[0] < REDRAW_SECONDS:
        return
    _drawn[0] = now
    done = min(1.0, elapsed / total)
    bar = "#" * int(done * BAR_WIDTH)
    label = compare.LABELS[transport]
    sys.stderr.write(
        f"\r{label:<14} [{bar:<{BAR_WIDTH}}] {elapsed:5.1f}/{total:g} s  "
        f"{delivered}/{sent} delivered "
    )
    if over:
        sys.stderr.write("\n")
    sys.stderr.flush()
