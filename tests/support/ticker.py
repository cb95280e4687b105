"""`manage.py run_ticker` in its own process, for ticker tests."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from tests.support.servers import ROOT, database_url


@dataclass
class Producer:
    process: asyncio.subprocess.Process
    output: str = ""

    async def finished(self, timeout: float) -> str:
        """Its output, once it exited with status 0 (on its own after --seconds)."""
        out, _ = await asyncio.wait_for(self.process.communicate(), timeout)
        self.output = out.decode()
        assert self.process.returncode == 0, self.output
        return self.output

    async def stop(self, timeout: float = 20) -> str:
        """SIGTERM, as a process manager stops it: it ends cleanly and says what it did."""
        self.process.terminate()
        return await self.finished(timeout)


@asynccontextmanager
async def producer(
    redis_url: str, symbols: list[str], *, seconds: float, rate: int = 20
) -> AsyncIterator[Producer]:
    """`manage.py run_ticker` in its own process; stopped with SIGTERM if still running."""
    env = dict(os.environ, DATABASE_URL=database_url(), REDIS_URL=redis_url)
    args = ["--symbols", ",".join(symbols), "--rate", str(rate), "--seconds", str(seconds)]
    process = await asyncio.create_subprocess_exec(
        sys.executable, "manage.py", "run_ticker", *args,
        cwd=ROOT, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    running = Producer(process)
    try:
        yield running
    finally:
        if process.returncode is None:
            process.terminate()
            await asyncio.wait_for(process.communicate(), 20)
