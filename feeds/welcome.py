"""What a welcome carries, read once per room and reused while the room is unchanged.

After a restart everyone comes back at once, and every connect to a room read and encoded
the same 50 messages and the same list of who is online (thousands of names in a big
room). Both are kept per process, encoded, for as long as the fan-out hub vouches that
nothing reached the room since they were read (feeds.live.room_version: same Redis
connection, no frame on the room's channel; a new message and a presence diff are both
frames) and at most TTL_SECONDS, which bounds what no frame announces (a publish that
failed in another process). Both are read after the socket joined the hub, as before: a
message is in the history, live, or both, and a presence diff after the baseline reaches
the socket too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from feeds import live, presence, protocol, selectors
from realtime.db import chat_database

TTL_SECONDS = 2.0
MAX_ROOMS = 1000

Version = int


class _RoomCache:
    """room id -> (version, expiry, the read's future), at most MAX_ROOMS rooms.

    Single flight: connects that find a read of the same room at the same version under
    way wait for it instead of reading again (a burst after a presence diff would
    otherwise all read). A read's result serves those whose version it was read at, for
    the same reason it may be kept: they joined before it began, or nothing reached the
    room between. A read that fails is not shared: its waiters read for themselves."""

    def __init__(self) -> None:
        self.entries: dict[int, tuple[Version, float, asyncio.Future[Any]]] = {}

    async def get(
        self, room_id: int, version: Version | None, read: Callable[[], Awaitable[Any]]
    ) -> Any:
        """What `read` returns, from the read that serves a connect at `version` if there
        is one (done or under way), else from a new one."""
        entry = self.entries.get(room_id)
        if version is not None and entry and entry[0] == version and entry[1] > time.monotonic():
            try:
                return await asyncio.shield(entry[2])
            except asyncio.CancelledError:
                if not entry[2].cancelled():
                    raise  # this connect was cancelled, not the read
        return await self.load(room_id, version, read)

    async def load(
        self, room_id: int, version: Version | None, read: Callable[[], Awaitable[Any]]
    ) -> Any:
        """Run `read`, sharing it with connects at the same version while it runs, and keep
        its result while the room stays at `version`."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if version is not None:
            if len(self.entries) >= MAX_ROOMS and room_id not in self.entries:
                del self.entries[next(iter(self.entries))]  # the oldest entry
            self.entries[room_id] = (version, time.monotonic() + TTL_SECONDS, future)
        try:
            value = await read()
        except BaseException:
            self._drop(room_id, future)
            future.cancel()
            raise
        future.set_result(value)
        if live.room_version(room_id) != version:
            self._drop(room_id, future)
        return value

    def _drop(self, room_id: int, future: asyncio.Future[Any]) -> None:
        entry = self.entries.get(room_id)
        if entry is not None and entry[2] is future:
            del self.entries[room_id]

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
    version = live.room_version(room_id)
    return await _history.get(room_id, version, lambda: _read_json(room_id))


async def _read_json(room_id: int) -> str:
    history, _ = protocol.fit_history(await _read(room_id), keep_newest=True)
    return json.dumps(history, separators=(",", ":"), allow_nan=False)


async def enter(*, room_id: int, username: str, conn_id: str) -> str:
    """Count the connection in the room's presence; return the welcome's `online` JSON.

    The list is the diffs' baseline, not the live set (see presence.enter), plus the
    user: they are in the next diff if not in this one, and adding a name twice changes
    nothing."""
    version = live.room_version(room_id)
    member = {"room_id": room_id, "username": username, "conn_id": conn_id}
    read_here = False

    async def read() -> tuple[frozenset[str], str]:
        nonlocal read_here
        read_here = True
        names = await presence.enter(**member, read_announced=True)
        return frozenset(names), protocol.encode(sorted(names))

    announced, text = await _online.get(room_id, version, read)
    if not read_here:
        await presence.enter(**member, read_announced=False)
    return text if username in announced else protocol.encode(sorted({*announced, username}))
