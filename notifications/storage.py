"""Serve SSE replay (`Last-Event-ID`) from the application's own tables.

django-eventstream asks its storage for "events after id N on channel C". Each channel
kind has a replay source reading the table that is already the source of truth
(notifications, read changes, announcements, activity), so the inbox and the stream
cannot disagree and nothing expires from a second event store.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Protocol

from django.db import connection
from django_eventstream.event import Event
from django_eventstream.storage import EventDoesNotExist, StorageBase

from notifications.channels import parse_channel
from realtime import channels as realtime_channels


class ReplaySource(Protocol):
    def current_id(self, channel: str, key: int | None) -> int: ...

    def events_after(
        self, channel: str, key: int | None, last_id: int, limit: int
    ) -> list[Event]: ...


# A read of one channel: (channel, its key, events after this id, at most this many), and
# what it found: the events, or the position to reset to (an id never issued, too far behind).
SourceRead = tuple[str, int | None, int, int]
ReadResult = tuple[list[Event], int | None]

_SOURCES: dict[str, ReplaySource] = {}


def register_source(kind: str, source: ReplaySource) -> None:
    """Make `source` answer replay for every channel of `kind` (see channels.parse_channel).

    A source may also answer for many channels at once, to serve a batch of streams in a
    few queries: `current_ids(list of (channel, key)) -> list of ids` and
    `events_after_many(list of SourceRead) -> list of ReadResult`."""
    _SOURCES[kind] = source


def source_for(channel: str) -> tuple[ReplaySource | None, Any]:
    """This app's source for its channels; for a kind site code registered with a source
    (realtime.api.register_channel), that one, with the channel's key as a str."""
    kind, key = parse_channel(channel)
    if kind:
        return _SOURCES.get(kind), key
    found = realtime_channels.kind_of(channel)
    if found is not None and found[0].source is not None:
        return found[0].source, found[1]
    return None, None


def _current_ids(source: ReplaySource, channels: list[tuple[str, int | None]]) -> list[int]:
    many = getattr(source, "current_ids", None)
    if many is not None:
        return many(channels)
    return [source.current_id(channel, key) for channel, key in channels]


def _events_after(source: ReplaySource, reads: list[SourceRead]) -> list[ReadResult]:
    many = getattr(source, "events_after_many", None)
    if many is not None:
        return many(reads)
    out: list[ReadResult] = []
    for read in reads:
        try:
            out.append((source.events_after(*read), None))
        except EventDoesNotExist as exc:
            out.append(([], int(exc.current_id)))
    return out


class ReplayStorage(StorageBase):
    """django-eventstream storage backed by the replay sources; it never stores anything."""

    def append_event(self, channel: str, event_type: str, data: str) -> Event:
        raise NotImplementedError(
            "django_eventstream's send_event() cannot store events in Pulse: use "
            "realtime.api.publish(channel, event, data[, id=]) or notifications.api.notify()"
        )

    def get_events(self, channel: str, last_id: int, limit: int = 100) -> list[Event]:
        [(events, reset_to)] = self.read_many([(channel, last_id, limit)])
        if reset_to is not None:
            raise EventDoesNotExist(f"cannot replay {channel} from {last_id}", reset_to)
        return events

    def read_many(self, reads: list[tuple[str, int, int]]) -> list[ReadResult]:
        """The events after each (channel, last id), at most `limit` each, for many streams.

        Each source first says where its channels stand, in one query: a channel already
        there (most of a reconnect storm) costs nothing more, and one ahead of it gets a
        reset (an id this server never issued: a reset database, a forged header) rather
        than a wait for ids that never come. Only the rest are read.
        """
        results: list[ReadResult] = [([], None)] * len(reads)
        by_source: dict[int, tuple[ReplaySource, list[tuple[int, SourceRead]]]] = {}
        for i, (channel, last_id, limit) in enumerate(reads):
            source, key = source_for(channel)
            if source is not None:
                by_source.setdefault(id(source), (source, []))[1].append(
                    (i, (channel, key, last_id, limit))
                )
        for source, items in by_source.values():
            currents = _current_ids(source, [(read[0], read[1]) for _, read in items])
            behind = []
            for (i, read), current in zip(items, currents, strict=True):
                if read[2] > current:
                    results[i] = ([], current)
                elif read[2] < current:
                    behind.append((i, read))
            found = _events_after(source, [read for _, read in behind]) if behind else []
            for (i, _), result in zip(behind, found, strict=True):
                results[i] = result
        return results

    def get_current_id(self, channel: str) -> int:
        source, key = source_for(channel)
        return source.current_id(channel, key) if source else 0


def stream_position(channels: list[str]) -> dict[str, int]:
    """The newest event id of each channel: where a fresh stream starts."""
    out = {}
    for channel in channels:
        source, key = source_for(channel)
        out[channel] = source.current_id(channel, key) if source else 0
    return out


# PostgreSQL advisory lock keys (two int4 keys) of the notification log: (_ANY, 0), held
# shared by a one-recipient insert and alone by a bulk insert; (_RECIPIENT, user id), held
# alone by a one-recipient insert.
_ANY = 0x4E540000
_RECIPIENT = 0x4E540001
# (_SEQUENCE, 0): the announcement publish sequence (publish, expire, delete).
_SEQUENCE = 0x4E540002


def replay_log_needs_lock() -> bool:
    """Whether inserts must take replay_log_lock: SQLite runs one writer at a time already."""
    return connection.vendor == "postgresql"


def replay_log_lock(*, user_ids: Collection[int]) -> None:
    """Until this transaction ends, be the only one adding notifications for these users.

    A stream's position is the last id it got, so each recipient's notifications must
    commit in id order: PostgreSQL takes ids at insert and may commit a later one first,
    which a stream would then pass by for good. SQLite runs one writer at a time already.
    One recipient locks only that recipient; many (a bulk batch) lock every recipient at
    once with one lock, as a lock each could exhaust PostgreSQL's shared lock table.
    """
    if not replay_log_needs_lock() or not user_ids:
        return
    if not connection.in_atomic_block:
        raise RuntimeError("replay_log_lock() outside a transaction would hold nothing")
    with connection.cursor() as cursor:
        if len(set(user_ids)) > 1:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_ANY])
        else:
            # Keys are int4: ids past 2**31 wrap, and a shared key only serialises more.
            key = (next(iter(user_ids)) + 2**31) % 2**32 - 2**31
            cursor.execute(
                "SELECT pg_advisory_xact_lock_shared(%s, 0), pg_advisory_xact_lock(%s, %s)",
                [_ANY, _RECIPIENT, key],
            )


def announcement_sequence_lock() -> None:
    """Until this transaction ends, be the only one taking an announcement sequence number.

    The sequence spans two tables (announcements and deleted ones), so neither unique
    constraint alone stops two transactions on PostgreSQL from taking the same number.
    SQLite runs one writer at a time already.
    """
    if not replay_log_needs_lock():
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, 0)", [_SEQUENCE])
