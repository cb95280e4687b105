"""When each user last held a live connection that carries their own channel.

`chat:live:<user id>` holds that moment (milliseconds since the epoch): anything published
to the user before it reached an open page, live or by its catch-up. The email worker reads
it (`last_live_ms`) to leave alone what was seen live.

Only a connection that carries a channel whose owner (realtime.channels, `owner=`) is its
user counts: an SSE stream or long poll with the page's defaults, or a `/ws/events/` socket
that asked for `user-<id>`. A ticker-only socket saw none of the user's notifications.
Each counts at three moments (open, every 20 s while open, close), in batches per process:
SSE streams and long polls with their keep-alive's refresh (realtime.sse), `/ws/events/`
sockets with BEAT below. One key write per user per refresh, nothing per event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Iterable

import redis

from realtime import channels
from realtime.beat import Beat
from realtime.redis_state import async_client, key, sync_client

logger = logging.getLogger(__name__)

# How long the moment is kept: longer than any email delay.
TTL_MS = 7 * 24 * 3600 * 1000
# As often as SSE streams refresh their connection slots (realtime.sse): a connection that
# dies without closing (SIGKILL) stops counting within this.
REFRESH_SECONDS = 20.0


def _key(user_id: int) -> str:
    return key("live", user_id)


def carries_own(user_id: int, names: Iterable[str]) -> bool:
    """Whether a connection of `user_id` on these channels would show the user's own events."""
    return any(channels.owner_of(name) == user_id for name in names)


async def mark(user_ids: Collection[int]) -> None:
    """Record that these users hold (or held until now) a live connection of their own."""
    if not user_ids:
        return
    now = int(time.time() * 1000)
    try:
        async with async_client().pipeline(transaction=False) as pipe:
            for user_id in user_ids:
                pipe.set(_key(user_id), now, px=TTL_MS)
            await pipe.execute()
    except (redis.RedisError, OSError) as exc:
        # Not recorded reads as "away": an email too many beats a missed one.
        logger.warning("live moment of %d users not recorded: %s", len(user_ids), exc)


def last_live_ms(*, user_ids: Collection[int]) -> dict[int, int]:
    """When each user last held a live connection of their own (ms since the epoch);
    absent: not lately. Redis being down reads as "not live", as in `mark`."""
    ids = list(user_ids)
    if not ids:
        return {}
    try:
        values = sync_client().mget([_key(user_id) for user_id in ids])
    except (redis.RedisError, OSError) as exc:
        logger.warning("last-live moments unavailable, treating users as away: %s", exc)
        return {}
    return {user_id: int(v) for user_id, v in zip(ids, values, strict=True) if v is not None}


async def _beat(members: list[tuple[int, str]]) -> None:
    await mark({user_id for user_id, _ in members})


# Connections that have no periodic batch of their own (`/ws/events/` sockets), as
# (user id, channel name): one pipeline per process per period for all of them.
BEAT: Beat[tuple[int, str]] = Beat("live moments", _beat, lambda: REFRESH_SECONDS)
