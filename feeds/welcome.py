"""The history a welcome carries: read once per room and reused while the room is unchanged.

After a restart everyone comes back at once, and every connect to a room read and encoded
the same 50 messages. Here a room's welcome history is kept per process, fitted and
encoded, for as long as the fan-out hub vouches that nothing reached the room since it was
read (fanout.Hub.room_version: same Redis connection, no frame on the room's channel) and
at most TTL_SECONDS, which bounds what no frame announces (a publish that failed in
another process). It is read after the socket joined the hub, as before: a message is in
the history, live, or both.
"""

from __future__ import annotations

import json
import time
from typing import Any

from feeds import fanout, protocol, selectors
from realtime.db import chat_database

TTL_SECONDS = 2.0
MAX_ROOMS = 1000

_cache: dict[int, tuple[tuple[int, int], float, str]] = {}  # room id -> version, expiry, JSON


@chat_database
def _read(room_id: int) -> list[dict[str, Any]]:
    history, _ = selectors.message_history(room_id=room_id, limit=protocol.WELCOME_HISTORY)
    return history


async def history_json(room_id: int) -> str:
    """The JSON array of the room's newest messages that fit in a welcome."""
    hub = fanout.hub()
    version = hub.room_version(room_id)
    cached = _cache.get(room_id)
    now = time.monotonic()
    if version is not None and cached is not None and cached[0] == version and cached[1] > now:
        return cached[2]
    history, _ = protocol.fit_history(await _read(room_id), keep_newest=True)
    text = json.dumps(history, separators=(",", ":"), allow_nan=False)
    if version is not None and hub.room_version(room_id) == version:
        if len(_cache) >= MAX_ROOMS:
            del _cache[next(iter(_cache))]  # the oldest entry
        _cache[room_id] = (version, now + TTL_SECONDS, text)
    return text
