"""Zero-downtime restarts: on SIGTERM a server process moves its clients off, then exits.

Behind a proxy with several processes restarted one at a time, nothing is lost and no
process takes a burst: the draining process stops accepting at once (the proxy sends new
connections to the others), then over DRAIN_SECONDS closes its chat sockets with 1012
and ends its SSE streams with a `stream-error` of reason `server-restart`, one after
another at moments spread evenly over the window, so the other processes take them back
at a steady rate. Clients reconnect at once (with a small jitter) and backfill: chat after
its last message id, SSE from its Last-Event-ID. Whatever is left after the spread
(ordinary consumers' sockets, requests in flight) is closed or finishes, and the process
exits 0. A second SIGTERM, or a SIGINT, exits at once (realtime.servers).
"""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any, Protocol

from django.conf import settings

from realtime import servers
from realtime.layer import pulse_layer
from realtime.outbox import WEBSOCKETS, Outbox
from realtime.sse import STREAMS, Connection
from realtime.wire import CLOSE_SERVICE_RESTART, RETRY_MS, restart_frame

logger = logging.getLogger(__name__)

# Clients are moved within this share of the window; the rest lets the last ones go.
SPREAD_SHARE = 0.9
TICK_SECONDS = 0.05
# A tick counts for at most this long: after a stall, no more than this much of the rest.
MAX_TICK_SECONDS = 0.1
# After the window, connections still closing get this long before the process stops.
EXIT_GRACE_SECONDS = 2.0


class ServerProcess(Protocol):
    """What a drain needs of the server (realtime.servers.DaphneProcess)."""

    def stop_accepting(self) -> int: ...
    def end_keep_alive(self) -> None: ...
    def close_websockets(self, code: int) -> int: ...
    def connections(self) -> int: ...
    def applications(self) -> int: ...
    def stop(self) -> None: ...


_running: set[asyncio.Task[None]] = set()


def install_for_daphne() -> None:
    """Drain on the first SIGTERM of this daphne process (config.asgi calls this)."""
    servers.on_first_sigterm(_start)


def _start() -> None:
    if _running:
        return
    task = asyncio.get_event_loop().create_task(drain(servers.DaphneProcess()))
    _running.add(task)


async def drain(process: ServerProcess, seconds: float | None = None) -> None:
    """Stop accepting, move every client off over `seconds` (DRAIN_SECONDS), stop."""
    seconds = settings.DRAIN_SECONDS if seconds is None else seconds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds + EXIT_GRACE_SECONDS
    try:
        ports = process.stop_accepting()
        process.end_keep_alive()
        clients = local_clients()
        random.shuffle(clients)
        logger.warning(
            "draining: %d listening sockets closed; moving %d chat sockets and SSE streams "
            "off over %.0f s",
            ports,
            len(clients),
            seconds,
        )
        await move_off(clients, spread=seconds * SPREAD_SHARE)
        for client in local_clients():  # joined while the first ones were moved
            move(client)
        process.close_websockets(CLOSE_SERVICE_RESTART)
        # Until the clients are gone and their consumers have finished (disconnect
        # handlers), or the window is over.
        while (process.connections() or process.applications()) and loop.time() < deadline:
            process.end_keep_alive()
            await asyncio.sleep(TICK_SECONDS * 2)
        logger.warning(
            "drained; %d connections and %d applications left, exiting",
            process.connections(),
            process.applications(),
        )
    except Exception:
        logger.exception("drain failed; exiting")
    finally:
        process.stop()


def local_clients() -> list[Any]:
    """The chat sockets and SSE streams of this event loop."""
    loop = asyncio.get_running_loop()
    return [
        member
        for hub in pulse_layer().hubs()
        if hub.loop is loop
        for kind in (WEBSOCKETS, STREAMS)
        for member in hub.members_of(kind)
    ]


async def move_off(clients: list[Any], *, spread: float) -> None:
    """Move `clients` off in order, evenly over `spread` seconds. A process that falls
    behind (busy elsewhere) spreads what is left evenly over the time left, rather than
    catching up at once: a burst of reconnects is what the spread is for."""
    if spread <= 0:
        for client in clients:
            move(client)
        return
    loop = asyncio.get_running_loop()
    total, done, owed = len(clients), 0, 1.0  # the first one at once
    last = loop.time()
    end = last + spread
    while done < total:
        now = loop.time()
        step = min(now - last, MAX_TICK_SECONDS)
        left = end - now + step
        owed = total - done if left <= step else owed + (total - done) * step / left
        due = min(total, done + int(owed))
        owed -= due - done
        for client in clients[done:due]:
            move(client)
        done, last = due, now
        if done < total:
            await asyncio.sleep(TICK_SECONDS)


def move(client: Any) -> None:
    """Send one client to another process: after what it is owed, it is told to reconnect."""
    if isinstance(client, Outbox):
        client.close(CLOSE_SERVICE_RESTART)
    elif isinstance(client, Connection):
        client.finish(restart_frame(random.randint(*RETRY_MS)))
