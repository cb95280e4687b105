"""The JSON-lines command loop of bench/ helper processes (load clients, senders).

The orchestrator writes one JSON object a line to stdin (`{"cmd": "connect", ...}`); each
answer is one JSON line on stdout. `quit` (or end of input) runs the cleanup and answers
`{"bye": true}`.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

Handler = Callable[..., dict[str, Any] | Awaitable[dict[str, Any]]]


def reply(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def serve(handlers: dict[str, Handler], cleanup: Callable[[], Any]) -> None:
    """Answer commands with `handlers[cmd](**arguments)` until `quit`."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**26)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while line := await reader.readline():
            command = json.loads(line)
            cmd = command.pop("cmd")
            if cmd == "quit":
                break
            handler = handlers.get(cmd)
            if handler is None:
                reply({"error": f"unknown command {cmd}"})
                continue
            result = handler(**command)
            reply(await result if inspect.isawaitable(result) else result)
    finally:
        done = cleanup()
        if inspect.isawaitable(done):
            await done
        reply({"bye": True})


class Pacer:
    """Spaces out starts to at most `rate` per second (0: no limit), so a ramp of thousands
    of connects stays bounded in rate as well as in concurrency."""

    def __init__(self, rate: float = 0) -> None:
        self.interval = 1 / rate if rate > 0 else 0.0
        self.next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        slot, self.next = max(now, self.next), max(now, self.next) + self.interval
        if slot > now:
            await asyncio.sleep(slot - now)


def run_fast(main: Callable[[], Awaitable[None]]) -> None:
    """Run a load client: every socket the hard limit allows, uvloop when installed."""
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
