"""Waiting for a condition that has no event to wait on (a counter, a database row)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def until(
    predicate: Callable[[], object | Awaitable[object]],
    timeout: float,
    what: str = "the condition",
    *,
    every: float = 0.05,
) -> None:
    """Poll `predicate` (plain or async) every `every` s until it is true; fail after
    `timeout` s naming `what`. A blocking check goes in as `lambda: asyncio.to_thread(f)`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        held = predicate()
        if inspect.isawaitable(held):
            held = await held
        if held:
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)
