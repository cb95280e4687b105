"""The ticker's producer loop: every symbol's next price, `rate` times a second, on time.

Ticks keep to a fixed schedule (start + n / rate) instead of sleeping 1 / rate after each
one, so the time spent publishing does not slow the rate down. A producer that falls more
than a tick behind (a stalled machine, Redis away) skips the missed ticks instead of
sending them in a burst: only the newest price of a symbol matters. What it achieved is
counted, so the command can say whether it kept up.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import redis

from ticker.prices import Quote, RandomWalk

logger = logging.getLogger(__name__)

Send = Callable[..., Awaitable[None]]


@dataclass
class Stats:
    symbols: int
    ticks: int = 0  # ticks whose prices were all published
    skipped: int = 0  # ticks missed while behind schedule
    failed: int = 0  # ticks abandoned on a Redis error
    seconds: float = 0.0
    busy: float = 0.0  # seconds spent publishing: the headroom left is 1 - busy / seconds

    @property
    def published(self) -> int:
        return self.ticks * self.symbols

    @property
    def rate(self) -> float:
        """Updates per second per symbol actually published."""
        return self.ticks / self.seconds if self.seconds else 0.0


async def run(
    walk: RandomWalk,
    *,
    rate: float,
    seconds: float | None,
    stop: asyncio.Event,
    send: Send,
) -> Stats:
    """Publish `walk`'s prices with `send(quote=...)` until `stop` is set or `seconds` pass."""
    loop = asyncio.get_running_loop()
    interval = 1.0 / rate
    stats = Stats(symbols=len(walk.quotes))
    start = loop.time()
    slot = 0  # the next tick on the schedule
    failing = False
    while not stop.is_set():
        due = start + slot * interval
        if seconds is not None and due - start >= seconds - 1e-9:
            break
        late = loop.time() - due
        if late > interval:
            missed = math.floor(late / interval)
            stats.skipped += missed
            slot += missed
            continue
        if late < 0 and await _stopped_within(stop, -late):
            break
        slot += 1
        began = loop.time()
        try:
            await _publish_all(walk.step(), send)
        except (redis.RedisError, OSError) as exc:
            stats.failed += 1
            if not failing:
                logger.warning("publishing prices failed (%s); retrying on the next tick", exc)
            failing = True
            continue
        finally:
            stats.busy += loop.time() - began
        if failing:
            logger.warning("publishing prices again")
            failing = False
        stats.ticks += 1
    # Each tick owns its whole interval: a run of n ticks on time lasts n intervals.
    stats.seconds = max(loop.time() - start, slot * interval)
    return stats


async def _publish_all(quotes: list[Quote], send: Send) -> None:
    for quote in quotes:
        await send(quote=quote)


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return False
    return True
