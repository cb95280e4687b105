"""SSE streams: each a member of the process's hub (realtime.hub), each event encoded once.

Every stream joins the groups of its channels on the Pulse channel layer (realtime.layer),
its user's group (kicks) and the process's SSE group (resyncs). The hub hands an event
message to all the local streams of its channel at once; it is encoded here once (its
`event:` and `data:` lines), and for each stream those bytes go around the stream's own
`id:` line (ids are per-connection composite positions, `user-7:42,announcements:5`) to a
bounded buffer, waking the connection's writer only if it is idle. A writer that wakes
takes everything pending in one write, so when events pile up they are coalesced into one
ASGI send instead of one per event. No thread hops and no ORM on this path.

Replay (a first connect, a `Last-Event-ID`, a resync after a Redis outage) is read from
storage by one worker per process (Streams), in batches, off the event loop; live events that arrive
meanwhile wait in a bounded backlog and are de-duplicated against what the read returned.

A position is a promise: the client has every event of that channel up to it. So a live
event never moves a position past one the stream did not get: notifications carry `prev`,
the id of the recipient's notification before them, and one whose `prev` lies beyond the
connection's position (that publish failed, its process died before publishing, or it is
still on its way) sends the connection back to storage for the gap instead of being
appended. Such an event at or below the position was already sent, and is dropped.

Nothing is dropped silently: a connection whose buffer passes MAX_BUFFERED_BYTES is cut
off. Its client reconnects with the id of the last event it fully received and replays
the rest from the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import threading
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from typing import Any
from urllib.parse import quote

from django_eventstream.storage import EventDoesNotExist
from django_eventstream.utils import get_storage
from prometheus_client import Gauge

from realtime import connection_caps, latest, metrics, seen_live, tcp
from realtime.channels import LATEST, STORAGE, replay_of
from realtime.connection_caps import SSE
from realtime.db import connect_database
from realtime.hub import Unavailable
from realtime.layer import pulse_layer
from realtime.wire import (
    CHANNELS_CHANGED,
    EVENT,
    KEEPALIVE,
    KICK,
    KICK_FRAMES,
    PUBLISHED_AT,
    RESYNC,
    SESSION_ENDED,
    SSE_GROUP,
    STREAM_OPEN,
    Event,
    encode_event,
    event_message,
    user_group,
)

__all__ = ["CHANNELS_CHANGED", "SESSION_ENDED", "Connection", "encode_event"]

logger = logging.getLogger(__name__)

# An idle stream writes at least this often, so a vanished peer always leaves unacknowledged
# data for TCP_USER_TIMEOUT to act on (realtime/tcp.py).
KEEPALIVE_SECONDS = float(tcp.KEEPALIVE_SECONDS)
TICK_SECONDS = 1.0
# Live streams keep their slots among their users' streams (realtime.connection_caps) this
# often, one Redis round trip per process: well inside the slots' TTL.
CAP_REFRESH_SECONDS = 20.0
# Bytes a connection may have waiting (in the hub and, where the server exposes it, in the
# server's write buffer) before it is cut off as too slow.
MAX_BUFFERED_BYTES = 256 * 1024
# Live events held for a connection while its replay is read; past this, re-read instead.
MAX_BACKLOG = 1000
REPLAY_BATCH = 200
REPLAY_LIMIT = 100  # events per read, shared among a stream's channels (django-eventstream's)
# A replay page stops at this many bytes; the next one is read once the client took it.
REPLAY_PAGE_BYTES = MAX_BUFFERED_BYTES // 4

CATCHING_UP, LIVE, CLOSED = "catching-up", "live", "closed"


class Connection:
    """One SSE response: its channels, positions and pending bytes. Loop thread only."""

    kind: Any = None  # STREAMS, set below

    __slots__ = (
        "_backlog",
        "_catch_up_from",
        "_index",
        "_parts",
        "_quoted",
        "_reread",
        "_slots",
        "_waiter",
        "abort",
        "cap_id",
        "channels",
        "close_after_flush",
        "epoch",
        "last_write",
        "live",
        "on_abort",
        "opened",
        "pending",
        "pending_bytes",
        "positions",
        "server_buffered",
        "session_key",
        "state",
        "user_id",
        "wants_more",
    )

    def __init__(
        self,
        *,
        user_id: int,
        session_key: str | None,
        positions: dict[str, int],
        cap_id: str = "",
    ) -> None:
        self.user_id = user_id
        self.session_key = session_key
        self.epoch = 0  # realtime.hub: the Redis subscription it joined on
        # Its slot among the user's streams (realtime.connection_caps), if it holds one.
        self.cap_id = cap_id
        self.channels = tuple(positions)
        # It shows the user's own events: while it is open they count as seen (seen_live).
        self.live = seen_live.carries_own(user_id, self.channels)
        self.positions = dict(positions)
        self._index = {channel: i for i, channel in enumerate(self.channels)}
        self._quoted = [quote(channel) for channel in self.channels]
        self._parts = [
            f"{q}:{positions[c]}" for q, c in zip(self._quoted, self.channels, strict=True)
        ]
        self.pending: list[bytes] = []
        self.pending_bytes = 0
        # Where in `pending` each latest-value channel's unsent value starts.
        self._slots: dict[str, int] = {}
        # What the server still held after the writer's last write, where it says (sse.py).
        self.server_buffered = 0
        self.state = CATCHING_UP
        self.opened = False  # stream-open is sent with the first replay: from then on, live
        self.wants_more = False  # a replay page was written; read the next once it is taken
        self._backlog: list[Event] = []
        self._catch_up_from: dict[str, int] = {}
        self._reread = False
        self._waiter: asyncio.Future[None] | None = None
        self.abort = False  # cut off (too slow): the writer drops the connection at once
        self.close_after_flush = False  # ended (kick): the writer flushes, then ends it
        # Set by the ASGI side when it can drop the socket itself (a writer may be blocked
        # in a server's flow control, waiting for a client that does not read).
        self.on_abort: Callable[[], None] | None = None
        self.last_write = time.monotonic()

    # -- ids ------------------------------------------------------------------------------

    def event_id(self) -> str:
        return ",".join(self._parts)

    def _advance(self, channel: str, event_id: int | None) -> None:
        i = self._index[channel]
        if event_id is not None and event_id > self.positions[channel]:
            self.positions[channel] = event_id
            self._parts[i] = f"{self._quoted[i]}:{event_id}"

    # -- writing --------------------------------------------------------------------------

    def push(self, event: Event) -> None:
        """Queue a live event (the hub's hot path)."""
        state = self.state
        if state is LIVE:
            if event.prev is not None and event.id is not None:
                known = self.positions[event.channel]
                if event.id <= known:
                    return  # already sent: read with a gap before it arrived
                if event.prev > known:
                    self._missed(event)
                    return
            self._advance(event.channel, event.id)
            event_id = ",".join(self._parts).encode()
            if event.replace:
                self._drop_unsent(event.channel)
                self._slots[event.channel] = len(self.pending)
            self.pending += (event.head, event_id, event.tail)
            self.pending_bytes += event.size + len(event_id)
            if self.pending_bytes + self.server_buffered > MAX_BUFFERED_BYTES:
                self.cut_off()
            else:
                self._wake()
        elif state is CATCHING_UP:
            if len(self._backlog) < MAX_BACKLOG:
                self._backlog.append(event)
            else:
                self._backlog.clear()
                self._reread = True

    def _drop_unsent(self, channel: str) -> None:
        """Take a latest-value channel's unsent value out of `pending`: the newer one goes
        last, with the newest id. Left in its place, it would carry an id that claims the
        values of other channels queued behind it, and a client cut off right after it
        would not get those back when it returns (their ids are not above its position)."""
        slot = self._slots.pop(channel, None)
        if slot is None:
            return
        pending = self.pending
        self.pending_bytes -= len(pending[slot]) + len(pending[slot + 1]) + len(pending[slot + 2])
        del pending[slot : slot + 3]
        for other, at in self._slots.items():
            if at > slot:
                self._slots[other] = at - 3

    def _missed(self, event: Event) -> None:
        """An event this stream never got comes before `event`: read the gap from storage.

        `event` waits in the backlog like any live event during a replay; the writer asks
        the hub for the read (`wants_more`), as it does for the next page of a replay.
        """
        self.begin_catch_up()
        self._backlog.append(event)
        self.wants_more = True
        self._wake()

    def write_raw(self, data: bytes) -> None:
        if self.state is CLOSED:
            return
        self.pending.append(data)
        self.pending_bytes += len(data)
        self._wake()

    def take(self) -> bytes:
        data = b"".join(self.pending)
        self.pending.clear()
        self._slots.clear()
        self.pending_bytes = 0
        self.last_write = time.monotonic()
        return data

    def behind(self) -> int:
        """Bytes waiting for the client, here and in the server's buffer."""
        return self.pending_bytes + self.server_buffered

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self) -> None:
        if self.pending or self.wants_more or self.state is CLOSED:
            return
        self._waiter = asyncio.get_running_loop().create_future()
        await self._waiter

    # -- ending ---------------------------------------------------------------------------

    def cut_off(self) -> None:
        """Too far behind: drop what is pending and end the connection now."""
        if self.state is not CLOSED:
            logger.info("SSE client of user %s too slow; disconnecting it", self.user_id)
            metrics.SSE_CUTOFFS.inc()
        self.pending.clear()
        self._slots.clear()
        self.pending_bytes = 0
        self.abort = True
        self.state = CLOSED
        self._wake()
        if self.on_abort is not None:
            on_abort, self.on_abort = self.on_abort, None
            try:
                on_abort()
            except Exception:
                logger.exception("could not drop a slow SSE connection")

    def gone(self) -> None:
        """The client left: stop writing."""
        self.pending.clear()
        self._slots.clear()
        self.pending_bytes = 0
        self.abort = True
        self.state = CLOSED
        self._wake()

    def finish(self, last: bytes = b"") -> None:
        """End the stream after what is pending and `last` are written."""
        if self.state is CLOSED:
            return
        if last:
            self.pending.append(last)
        self.close_after_flush = True
        self.state = CLOSED
        self._wake()

    # -- replay ---------------------------------------------------------------------------

    def begin_catch_up(self) -> None:
        if self.state is CLOSED:
            return
        if self.state is LIVE:
            self._backlog = []
        self.state = CATCHING_UP
        self._catch_up_from = dict(self.positions)

    def apply_catch_up(self, read: ReplayRead) -> bool:
        """Write what storage returned, then the live backlog; False if more is to read.

        A backlog event that shows a gap (see `_missed`) starts the next read itself.
        """
        if self.state is not CATCHING_UP:
            return True
        for channel, current in read.resets.items():
            self.positions[channel] = current
            self._parts[self._index[channel]] = f"{self._quoted[self._index[channel]]}:{current}"
        out: list[bytes] = []
        if not self.opened:
            self.opened = True
            out.append(STREAM_OPEN)
        if read.resets:
            metrics.SSE_RESETS.inc()
            body = json.dumps({"channels": sorted(read.resets)})
            out.append(f"event: stream-reset\nid: {self.event_id()}\ndata: {body}\n\n".encode())
        replayed: set[tuple[str, int | None]] = set()
        size = 0
        more = read.more
        for event in read.events:
            if size > REPLAY_PAGE_BYTES:
                more = True
                break
            self._advance(event.channel, event.id)
            out += (event.head, self.event_id().encode(), event.tail)
            size += event.size
            replayed.add((event.channel, event.id))
        if replayed:
            metrics.SSE_REPLAYED_EVENTS.inc(len(replayed))
        for data in out:
            self.pending.append(data)
            self.pending_bytes += len(data)
        if more or self._reread:
            if self._reread:
                self._reread = False
                self._backlog.clear()
                self._catch_up_from = dict(self.positions)
            self.wants_more = True
            self._wake()
            return False
        backlog, self._backlog = self._backlog, []
        start = self._catch_up_from
        self.state = LIVE
        for event in backlog:
            seen = (event.channel, event.id) in replayed
            old = event.id is not None and event.id <= start.get(event.channel, -1)
            if not seen and not old:
                self.push(event)
        self._wake()
        return self.state is not CATCHING_UP


class ReplayRead:
    """What one catch-up read found for one connection."""

    __slots__ = ("events", "more", "resets")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.resets: dict[str, int] = {}
        self.more = False


def read_replay(
    requests: list[tuple[tuple[str, ...], dict[str, int]]],
) -> list[ReplayRead]:
    """Read events after each request's positions (on the connect thread).

    Stored channels (realtime.channels.STORAGE) mirror django_eventstream's get_events:
    REPLAY_LIMIT events per read shared among the channels, `stream-reset` for an id
    storage never issued. The whole batch is one storage read (a few queries, not a few
    per stream), and identical reads in it (many streams on one public channel at one
    position) are read once. Latest-value channels give their latest value if it is
    newer than the position, all in one Redis round trip.
    """
    storage = get_storage()
    plans = []
    wanted: dict[tuple[str, int, int], int] = {}  # a read -> its index in `reads`
    latest_wanted: set[str] = set()
    for channels, positions in requests:
        per_channel = max(1, REPLAY_LIMIT // len(channels))
        plan = []
        for channel in channels:
            replay = replay_of(channel)
            if replay == STORAGE and storage:
                # One more than a page: whether more lie beyond it.
                key = (channel, positions[channel], per_channel + 1)
                plan.append((channel, wanted.setdefault(key, len(wanted))))
            elif replay == LATEST:
                latest_wanted.add(channel)
        plans.append((plan, per_channel))
    found = _read_many(storage, list(wanted)) if wanted else []
    newest = latest.read(sorted(latest_wanted)) if latest_wanted else {}
    out = []
    for (plan, per_channel), (channels, positions) in zip(plans, requests, strict=True):
        read = ReplayRead()
        for channel, index in plan:
            events, reset_to = found[index]
            if reset_to is not None:
                read.resets[channel] = reset_to
            if len(events) > per_channel:
                events = events[:per_channel]
                read.more = True
            read.events += [encode_event(channel, e.type, e.data, e.id) for e in events]
        for channel in channels:
            value = newest.get(channel)
            if value is not None and value[0] > positions[channel]:
                event_id, event_type, data = value
                read.events.append(encode_event(channel, event_type, data, event_id, 0, True))
        out.append(read)
    return out


def _read_many(storage: Any, reads: list[tuple[str, int, int]]) -> list[tuple[list[Any], Any]]:
    """Every read at once where the storage can (ReplayStorage), else one by one."""
    if hasattr(storage, "read_many"):
        return storage.read_many(reads)
    out = []
    for channel, last_id, limit in reads:
        try:
            out.append((storage.get_events(channel, last_id, limit=limit), None))
        except EventDoesNotExist as exc:
            out.append(([], int(exc.current_id)))
    return out


class Streams:
    """All SSE streams of this process (one event loop): by user, the replay worker and
    the keep-alive. Delivery comes from the hub (STREAMS.deliver)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.by_user: dict[int, set[Connection]] = {}
        self._replay_queue: dict[Connection, None] = {}
        self._replay_task: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return sum(len(conns) for conns in tuple(self.by_user.values()))

    # -- membership -----------------------------------------------------------------------

    def attach(self, conn: Connection) -> None:
        self.by_user.setdefault(conn.user_id, set()).add(conn)
        if conn.live:
            self._spawn(seen_live.mark((conn.user_id,)))
        self.catch_up(conn)
        if self._ticker is None or self._ticker.done():
            self._ticker = self.loop.create_task(self._keepalive(), context=contextvars.Context())

    def detach(self, conn: Connection) -> None:
        conn.state = CLOSED
        users = self.by_user.get(conn.user_id)
        if users is not None:
            users.discard(conn)
            if not users:
                del self.by_user[conn.user_id]
        self._replay_queue.pop(conn, None)
        if conn.live:
            conn.live = False
            self._spawn(seen_live.mark((conn.user_id,)))
        if conn.cap_id:
            self._spawn(
                connection_caps.release(kind=SSE, user_id=conn.user_id, conn_id=conn.cap_id)
            )
            conn.cap_id = ""

    # -- replay worker --------------------------------------------------------------------

    def catch_up(self, conn: Connection) -> None:
        if conn.state is CLOSED:
            return
        conn.begin_catch_up()
        metrics.SSE_REPLAYS.inc()
        self._replay_queue[conn] = None
        if self._replay_task is None or self._replay_task.done():
            # A context of its own: the DB connection it opens is its own, closed per batch.
            self._replay_task = self.loop.create_task(self._replay(), context=contextvars.Context())

    def catch_up_more(self, conn: Connection) -> None:
        """Read the next replay page of `conn` (its writer has taken the last one)."""
        if conn.state is CATCHING_UP:
            self._replay_queue[conn] = None
            if self._replay_task is None or self._replay_task.done():
                self._replay_task = self.loop.create_task(
                    self._replay(), context=contextvars.Context()
                )

    async def _replay(self) -> None:
        # On the connect thread, which keeps its SQLite connection (realtime.db).
        read_batch = connect_database(read_replay)
        while self._replay_queue:
            batch = []
            for conn in list(self._replay_queue)[:REPLAY_BATCH]:
                del self._replay_queue[conn]
                if conn.state is CATCHING_UP:
                    batch.append(conn)
            try:
                reads = await read_batch([(c.channels, dict(c.positions)) for c in batch])
            except Exception:
                logger.exception("replay read failed; retrying")
                for conn in batch:
                    self._replay_queue[conn] = None
                await asyncio.sleep(1.0)
                continue
            for conn, read in zip(batch, reads, strict=True):
                conn.apply_catch_up(read)  # unfinished ones come back via catch_up_more

    # -- keep-alive -----------------------------------------------------------------------

    async def _keepalive(self) -> None:
        refreshed = time.monotonic()
        while self.by_user:
            await asyncio.sleep(TICK_SECONDS)
            now = time.monotonic()
            due = now - KEEPALIVE_SECONDS
            for conns in self.by_user.values():
                for conn in conns:
                    if conn.state is LIVE and conn.last_write <= due and not conn.pending:
                        conn.write_raw(KEEPALIVE)
            if now - refreshed >= CAP_REFRESH_SECONDS:
                refreshed = now
                await connection_caps.refresh(kind=SSE, connections=self._capped())
                await seen_live.mark(
                    {uid for uid, cs in self.by_user.items() if any(c.live for c in cs)}
                )

    def _capped(self) -> list[tuple[int, str]]:
        return [(c.user_id, c.cap_id) for cs in self.by_user.values() for c in cs if c.cap_id]

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = self.loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


_streams: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Streams] = (
    weakref.WeakKeyDictionary()
)


def streams() -> Streams:
    """The SSE streams of the running event loop (one set per server process)."""
    loop = asyncio.get_running_loop()
    found = _streams.get(loop)
    if found is None:
        found = _streams[loop] = Streams(loop)
    return found


def stream_count() -> int:
    """SSE streams open in this process (a gauge; read from any thread)."""
    return sum(len(s) for s in tuple(_streams.values()))


# ---------------------------------------------------------------- as members of the hub


class _StreamKind:
    """SSE streams as members of realtime.hub: events are encoded once for all the streams
    of their channel; kicks end the matching streams of a user; a resync re-reads."""

    async def deliver(
        self, members: tuple[Connection, ...], messages: list[dict[str, Any]]
    ) -> None:
        for message in messages:
            kind = message.get("type")
            if kind == EVENT:
                channel = message.get("channel")
                event = encode_event(
                    channel,
                    message["event"],
                    message["data"],
                    message.get("id"),
                    message.get("prev"),
                    bool(message.get("latest")),
                )
                handed = 0
                for conn in members:
                    if channel in conn._index:
                        conn.push(event)
                        handed += 1
                # Once per message and process, not per stream (realtime.metrics).
                metrics.SSE_DELIVERED.inc(handed)
                metrics.observe_latency(metrics.SSE_LATENCY, message.get(PUBLISHED_AT))
            elif kind == KICK:
                frame = KICK_FRAMES.get(message.get("reason"), KICK_FRAMES[SESSION_ENDED])
                session = message.get("session") or None
                for conn in members:
                    if session is None or conn.session_key == session:
                        conn.finish(frame)
            elif kind == RESYNC:
                self.resync(list(members), 0)

    def resync(self, members: list[Connection], epoch: int) -> None:
        """Anything published while this process was not subscribed is in storage: every
        stream re-reads its channels (joined before or during the outage alike)."""
        if members:
            metrics.SSE_RESYNCS.inc(len(members))
            local = streams()
            for conn in members:
                local.catch_up(conn)

    def __repr__(self) -> str:
        return "sse-streams"


STREAMS = _StreamKind()
Connection.kind = STREAMS


def stream_groups(conn: Connection) -> list[str]:
    """The groups a stream listens on: its channels, its user's, and every stream's."""
    return [*conn.channels, user_group(conn.user_id), SSE_GROUP]


@contextlib.asynccontextmanager
async def joined(conn: Connection, gauge: Gauge) -> AsyncIterator[Streams]:
    """`conn` as a member of the hub and of this process's streams, its replay begun.

    Shared by SSE streams and long polls (realtime.longpoll): the same groups, replay and
    live delivery, only the way out differs. `gauge` counts it while it is open.
    """
    layer = pulse_layer()
    hub = layer.hub()
    local = streams()
    groups = [layer.group_channel(group) for group in stream_groups(conn)]
    try:
        # Live before the replay is read, so the two overlap instead of leaving a gap.
        # While Redis is away, the stream replays at once and resyncs when it is back.
        await hub.join(conn, groups, wait=not hub.failing)
    except Unavailable:
        logger.warning("SSE stream of user %s starts before Redis confirmed it", conn.user_id)
        await hub.join(conn, groups, wait=False)
    local.attach(conn)
    gauge.inc()
    try:
        yield local
    finally:
        gauge.dec()
        hub.leave(conn)
        local.detach(conn)


async def frames(
    conn: Connection,
    prefix: bytes = b"",
    drained: Callable[[], Awaitable[None]] | None = None,
) -> AsyncIterator[bytes]:
    """The bytes of one stream: `prefix`, then whatever the hub queues, until it ends.

    `drained`: awaited before the next replay page is read, until the client has taken
    enough of the last one (the ASGI side knows the server's buffer), so a long replay is
    paced by the client instead of piling up in memory.
    """
    if prefix:
        yield prefix
    async with joined(conn, metrics.SSE_OPEN) as local:
        while True:
            await conn.wait()
            if conn.abort:
                return
            if conn.pending:
                yield conn.take()
            if conn.wants_more:
                conn.wants_more = False
                if drained is not None:
                    await drained()
                local.catch_up_more(conn)
            if conn.state is CLOSED and not conn.pending:
                return


# ---------------------------------------------------------------- publishing


_publish_failed = threading.Event()


def publish_events(events: Iterable[tuple[Any, ...]]) -> bool:
    """Publish (channel, event_type, json_data, event_id[, prev]) tuples to their channels'
    groups in one round trip; False if Redis failed.

    `prev`: the id of the channel's event before this one. A stream that has not got it
    reads the gap from storage before this event, so a publish that failed in any process
    reaches clients with the next event on that channel. A failure is logged, not raised:
    the events are stored, and also reach clients on the resync that this process's next
    successful publish (or a reconnecting server) triggers.
    """
    messages = [(event[0], event_message(*event)) for event in events]
    if not messages:
        return True
    if _publish_failed.is_set():
        messages.insert(0, (SSE_GROUP, {"type": RESYNC}))
    if pulse_layer().publish_sync(messages):
        _publish_failed.clear()
        return True
    _publish_failed.set()
    return False


def kick(*, user_id: int, session_key: str | None, reason: str = SESSION_ENDED) -> bool:
    """End a user's SSE streams on every process: one session's, or all if None."""
    message = {"type": KICK, "session": session_key or "", "reason": reason}
    return pulse_layer().publish_sync([(user_group(user_id), message)])
