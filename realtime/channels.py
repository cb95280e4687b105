"""Live channels: which kinds exist, who may read each, and where its replay comes from.

One registry, default deny: a channel name that matches no registered kind is readable by
nobody, over SSE (`/events/?channel=`) and WebSocket (`/ws/events/?channel=`) alike. The
domain apps register their kinds (notifications: `user-<id>`, `group-<id>`, ...); site code
registers its own with realtime.api.register_channel.

A kind's replay is one of:
- STORAGE: stored events with ids, replayed after a `Last-Event-ID` from the storage class
  (settings.EVENTSTREAM_STORAGE_CLASS; the notifications app serves it from its tables);
- LATEST: only the latest value counts: it is kept in Redis, a new or returning stream
  gets it at once, and a client that falls behind skips stale values (realtime.latest);
- NO_REPLAY: live only; nothing is kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from realtime.wire import GROUP_NAME

STORAGE, LATEST, NO_REPLAY = "storage", "latest", "none"
REPLAYS = (STORAGE, LATEST, NO_REPLAY)

# can_read(user, key): `user` is an active, authenticated user; `key` the part of the
# channel name after "<kind>-" (None for a single-channel kind), as the pattern matched it.
AccessRule = Callable[[Any, str | None], bool]
# owner(key): the id of the user whose own events the channel carries (a user's private
# channel), else None. A live connection on such a channel counts as that user having been
# on the site (realtime.seen_live: no email for what they saw).
OwnerRule = Callable[[str | None], int | None]

DEFAULT_KEY = r"[A-Za-z0-9_.]{1,64}"


@dataclass(frozen=True)
class ChannelKind:
    name: str
    pattern: re.Pattern[str]
    can_read: AccessRule
    replay: str
    source: Any = None  # STORAGE: what replays it (see realtime.api.register_channel)
    owner: OwnerRule | None = None

    def key(self, channel: str) -> str | bool | None:
        """The key of `channel` if it is of this kind; False if it is not."""
        match = self.pattern.fullmatch(channel)
        if match is None:
            return False
        return match.groupdict().get("key")


_KINDS: dict[str, ChannelKind] = {}


def register(
    name: str,
    *,
    can_read: AccessRule,
    replay: str = NO_REPLAY,
    key: str | None = DEFAULT_KEY,
    source: Any = None,
    owner: OwnerRule | None = None,
) -> ChannelKind:
    """Register a kind of channel: `<name>-<key>` (or just `<name>` with key=None).

    `key`: a regular expression for the part after the dash. Registering the same name
    again replaces the kind (a reload); two kinds whose names could collide are refused.
    `owner`: for a user's private channel, key -> that user's id (None for keys of no one).
    """
    if replay not in REPLAYS:
        raise ValueError(f"replay must be one of {', '.join(REPLAYS)}, not {replay!r}")
    if not GROUP_NAME.fullmatch(name) or name.startswith("pulse"):
        raise ValueError(
            f"channel kind {name!r}: letters, digits, '_' or '.'; the 'pulse' prefix is Pulse's"
        )
    if "-" in name:
        raise ValueError(f"channel kind {name!r}: no '-' (it separates the kind from the key)")
    if not callable(can_read):
        raise TypeError("can_read must be a function (user, key) -> bool")
    if owner is not None and not callable(owner):
        raise TypeError("owner must be a function (key) -> user id or None")
    pattern = re.escape(name) if key is None else rf"{re.escape(name)}-(?P<key>{key})"
    if source is not None and replay != STORAGE:
        raise ValueError("a replay source needs replay=STORAGE")
    kind = ChannelKind(
        name=name,
        pattern=re.compile(pattern),
        can_read=can_read,
        replay=replay,
        source=source,
        owner=owner,
    )
    _KINDS[name] = kind
    return kind


def kind_of(channel: str) -> tuple[ChannelKind, str | None] | None:
    """The kind of `channel` and its key, or None if no registered kind has it."""
    if not isinstance(channel, str) or not GROUP_NAME.fullmatch(channel):
        return None
    name = channel.split("-", 1)[0]
    kind = _KINDS.get(name)
    if kind is None:
        return None
    key = kind.key(channel)
    return None if key is False else (kind, key)  # type: ignore[return-value]


def can_read(user: Any, channel: str) -> bool:
    """True only for an active, logged-in user whose kind's rule allows `channel`."""
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        return False
    found = kind_of(channel)
    if found is None:
        return False
    kind, key = found
    return bool(kind.can_read(user, key))


def owner_of(channel: str) -> int | None:
    """The user whose own events `channel` carries, or None (shared, or not registered)."""
    found = kind_of(channel)
    if found is None or found[0].owner is None:
        return None
    return found[0].owner(found[1])


def replay_of(channel: str) -> str:
    found = kind_of(channel)
    return NO_REPLAY if found is None else found[0].replay
