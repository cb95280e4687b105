"""What a welcome carries, read once per room and reused while the room is unchanged.

After a restart everyone comes back at once, and every connect to a room read and encoded
the same 50 messages and the same list of who is online (thousands of names in a big
room). Both are kept per process, encoded, for as long as the fan-out hub vouches that
nothing reached the room since they were read (fanout.Hub.room_version: same Redis
connection, no frame on the room's channel; a new message and a presence diff are both
frames) and at most TTL_SECONDS, which bounds what no frame announces (a publish that
failed in another process). Both are read after the socket joined the hub, as before: a
message is in the history, live, or both, and a presence diff after the baseline reaches
the socket too.
"""

from __future__ import annotations

import json
import time
from typing import Any

from feeds import fanout, presence, protocol, selectors
from realtime.db import chat_database

TTL_SECONDS = 2.0
MAX_ROOMS = 1000

Version = tuple[int, int]


class _RoomCache:
    """room id -> (version, expiry, value), at most MAX_ROOMS rooms."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[Version, float, Any]] = {}

    def get(self, room_id: int, version: Version | None) -> Any:
        entry = self.entries.get(room_id)
        if version is None or entry is None or entry[0] != version:
            return None
        return entry[2] if entry[1] > time.monotonic() else None

    def put(self, room_id: int, version: Version | None, value: Any) -> None:
        """Keep `value`, read while the room was at `version`, if it still is."""
        if version is None or fanout.hub().room_version(room_id) != version:
            return
        if len(self.entries) >= MAX_ROOMS and room_id not in self.entries:
            del self.entries[next(iter(self.entries))]  # the oldest entry
        self.entries[room_id] = (version, time.monotonic() + TTL_SECONDS, value)

    def clear(self) -> None:
        self.entries.clear()


_history = _RoomCache()  # the JSON array of the history
_online = _RoomCache()  # (the announced usernames, their JSON array)


def clear() -> None:
    _history.clear()
    _online.clear()


@chat_database
def _read(room_id: int) -> list[dict[str, Any]]:
    history, _ = selectors.message_history(room_id=room_id, limit=protocol.WELCOME_HISTORY)
    return history


async def history_json(room_id: int) -> str:
    """The JSON array of the room's newest messages that fit in a welcome."""
    version = fanout.hub().room_version(room_id)
    text = _history.get(room_id, version)
    if text is None:
        history, _ = protocol.fit_history(await _read(room_id), keep_newest=True)
        text = json.dumps(history, separators=(",", ":"), allow_nan=False)
        _history.put(room_id, version, text)
    return text


async def enter(*, room_id: int, username: str, conn_id: str) -> str:
    """Count the connection in the room's presence; return the welcome's `online` JSON.

    The list is the diffs' baseline, not the live set (see presence.announced), plus the
    user: they are in the next diff if not in this one, and adding a name twice changes
    nothing."""
    version = fanout.hub().room_version(room_id)
    kept = _online.get(room_id, version)
    names = await presence.enter(
        room_id=room_id, username=username, conn_id=conn_id, read_announced=kept is None
    )
    if kept is None:
        kept = (frozenset(names), protocol.encode(sorted(names)))
        _online.put(room_id, version, kept)
    announced, text = kept
    return text if username in announced else protocol.encode(sorted({*announced, username}))
