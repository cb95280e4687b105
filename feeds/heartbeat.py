"""The chat sockets' heartbeat: one beat per server process for all of its sockets.

Every HEARTBEAT_SECONDS the process keeps its sockets counted in their rooms' presence
(announcing entries that had expired or were re-added, as a connect would), keeps their
slots among their users' connections (realtime.connection_caps), and closes the sockets
of users deactivated without a signal (QuerySet.update()): one presence script and one
caps script per thousand sockets and one query per few thousand users, instead of two
scripts and a query per socket (docs/performance.md, "Capacity").
"""

from __future__ import annotations

from dataclasses import dataclass

from feeds import access, presence, protocol
from realtime import connection_caps
from realtime.beat import Beat
from realtime.db import chat_database
from realtime.outbox import Outbox


@dataclass(frozen=True, eq=False)  # one per socket, hashed by identity
class Socket:
    room_id: int
    user_id: int
    username: str
    conn_id: str
    outbox: Outbox


@chat_database
def _active_user_ids(user_ids: set[int]) -> set[int]:
    return access.active_user_ids(user_ids)


async def _beat(sockets: list[Socket]) -> None:
    try:
        await presence.heartbeat_many((s.room_id, s.username, s.conn_id) for s in sockets)
        await connection_caps.refresh(
            kind=connection_caps.CHAT, connections=((s.user_id, s.conn_id) for s in sockets)
        )
        active = await _active_user_ids({s.user_id for s in sockets})
        for socket in sockets:
            if socket.user_id not in active:
                socket.outbox.close(protocol.CLOSE_SIGNED_OUT)  # a closed one ignores it
    finally:
        # A socket that closed during the beat may have been counted again after its own
        # release (the scripts re-add missing entries): release it once more. Its stop()
        # comes before its releases, so every such socket is out of BEAT by now.
        still_open = set(BEAT.members())
        for socket in sockets:
            if socket not in still_open:
                await _release(socket)


async def _release(socket: Socket) -> None:
    await presence.leave(room_id=socket.room_id, username=socket.username, conn_id=socket.conn_id)
    await connection_caps.release(
        kind=connection_caps.CHAT, user_id=socket.user_id, conn_id=socket.conn_id
    )


# The period is read per beat: tests shorten presence.HEARTBEAT_SECONDS.
BEAT: Beat[Socket] = Beat("chat heartbeat", _beat, lambda: presence.HEARTBEAT_SECONDS)


def start(socket: Socket) -> None:
    """Beat for `socket` from the next beat of its process on (its connect counted it)."""
    BEAT.add(socket)


def stop(socket: Socket) -> None:
    """Beat no more for a closed socket: call it before releasing its presence and slot."""
    BEAT.discard(socket)
