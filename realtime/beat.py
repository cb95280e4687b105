"""One periodic batch per process for many connections, instead of a timer per connection.

An idle connection that refreshes its state in Redis on its own timer costs a task, a
round trip and whatever else its beat does, once per connection: at tens of thousands of
idle chat sockets that was most of a server's idle CPU. A `Beat` keeps the members
registered on the running event loop (one set per server process, as realtime.sse keeps
its streams) and calls its action once per period with all of them, so the action can
batch its Redis scripts and queries. The task starts with the first member and ends once
a beat finds none left.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import weakref
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Hashable)


class _LoopMembers(Generic[M]):
    __slots__ = ("members", "task")

    def __init__(self) -> None:
        self.members: dict[M, None] = {}  # a dict keeps join order: batches stay stable
        self.task: asyncio.Task[None] | None = None


class Beat(Generic[M]):
    """Call `action(members)` every `period()` seconds with this loop's members.

    `period` is read before each wait, so a setting changed at run time (tests) applies
    from the next beat. A failing action is logged; the next beat runs as usual.
    """

    def __init__(
        self,
        name: str,
        action: Callable[[list[M]], Awaitable[None]],
        period: Callable[[], float],
    ) -> None:
        self.name = name
        self.action = action
        self.period = period
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopMembers[M]] = (
            weakref.WeakKeyDictionary()
        )

    def add(self, member: M) -> None:
        """Include `member` in this loop's beats from the next one on."""
        loop = asyncio.get_running_loop()
        state = self._loops.get(loop)
        if state is None:
            state = self._loops[loop] = _LoopMembers()
        state.members[member] = None
        if state.task is None or state.task.done():
            # A context of its own: the beat outlives the connection that started it.
            state.task = loop.create_task(self._run(state), context=contextvars.Context())

    def discard(self, member: M) -> None:
        """Leave this loop's beats (a closed connection)."""
        state = self._loops.get(asyncio.get_running_loop())
        if state is not None:
            state.members.pop(member, None)

    def members(self) -> list[M]:
        """This loop's members, in join order."""
        state = self._loops.get(asyncio.get_running_loop())
        return list(state.members) if state is not None else []

    async def _run(self, state: _LoopMembers[M]) -> None:
        while state.members:
            await asyncio.sleep(self.period())
            batch = list(state.members)
            if not batch:
                break
            try:
                await self.action(batch)
            except Exception:
                logger.exception("%s beat failed", self.name)
