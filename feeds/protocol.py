"""The chat WebSocket wire format: client frames checked here, server frames built here.

Every way a client frame can be wrong maps to one error code, so a consumer never sees
input it has not validated and bad input never reaches the database (docs/chat-protocol.md).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import Any

from feeds.models import CONTENT_MAX
from realtime import wire

WELCOME_HISTORY = 50
HISTORY_MAX = 100
# daphne refuses to send a message over 64 KiB (--websocket-max-message-size): history in
# a frame stops at this many bytes, and the rest is paged (has_more).
HISTORY_BYTES = 48 * 1024
CLIENT_MSG_ID_MAX = 64
# Other client fields of a message are echoed to the whole room: keep them small.
EXTRA_FIELDS_MAX = 16
EXTRA_NAME_MAX = 50
EXTRA_VALUE_MAX = 200
DB_ID_MAX = 2**63 - 1

# Close codes the application sends (daphne lets it send only 1000 and 3000-4999).
CLOSE_SIGNED_OUT = 4001
CLOSE_ACCESS_REVOKED = 4003
CLOSE_RATE_LIMITED = 4008
# Too far behind the room (realtime.outbox): reconnect and backfill with `history` `after`.
# The server's live feed was interrupted (realtime.hub): reconnect and backfill.
CLOSE_TOO_SLOW, CLOSE_RESYNC = wire.CLOSE_TOO_SLOW, wire.CLOSE_RESYNC
# The user holds CHAT_SOCKETS_PER_USER sockets already (realtime.connection_caps): accepted,
# told with an error frame, then closed, so a browser can say why (a refused handshake
# is only a 1006 there). Retry later, after closing other tabs.
CLOSE_TOO_MANY_CONNECTIONS = 4029

BAD_JSON = "bad_json"
UNKNOWN_TYPE = "unknown_type"
INVALID = "invalid"
RATE_LIMITED = "rate_limited"
# The server failed to handle a frame (a database error, say); the frame had no effect
# beyond what a retry with the same client_msg_id deduplicates.
UNAVAILABLE = "unavailable"
TOO_MANY_CONNECTIONS = "too_many_connections"
# Refused edits and deletes (feeds.services): no such message in the room (or a deleted
# one to edit), someone else's message, an edit after the window closed.
NOT_FOUND, FORBIDDEN, EDIT_WINDOW_OVER = "not_found", "forbidden", "edit_window_over"

CLIENT_TYPES = (
    "message",
    "history",
    "typing",
    "join",
    "edit",
    "delete",
    "read",
    "react",
    "mute",
    "ban",
    "report",
)
# The emoji a message may get (`react`): a small fixed set, so a reaction bar stays small
# and nobody reacts with arbitrary text.
REACTIONS = ("👍", "❤️", "😂", "😮", "😢", "🎉")
BAD_EMOJI = "bad_emoji"
# A `message` from a member a moderator muted in the room (feeds.moderation): the error
# carries `remaining_seconds`.
MUTED = "muted"
# A `message` to a direct message whose other member blocked the sender (feeds.blocking).
BLOCKED = "blocked"
MUTE_MINUTES_MAX = 7 * 24 * 60
REPORT_REASON_MAX = 500
# Fields the server sets in a broadcast, whatever the client sent under those names.
SERVER_FIELDS = ("id", "user", "room", "content", "created_at", "client_msg_id", "prev")
# Rate-limit cost per frame: naive clients send `typing` on every keystroke.
_COSTS = {"typing": 0.25, "read": 0.25}


class FrameError(Exception):
    """A client frame the server refuses; becomes an error frame, the socket stays open."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        client_msg_id: str = "",
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_msg_id = client_msg_id
        self.extra = extra or {}  # more fields of the error frame (`remaining_seconds`)


@dataclass(frozen=True)
class MessageIn:
    content: str
    client_msg_id: str
    client_fields: dict[str, Any]


@dataclass(frozen=True)
class EditIn:
    id: int
    content: str


@dataclass(frozen=True)
class ReactIn:
    id: int
    emoji: str


@dataclass(frozen=True)
class HistoryIn:
    before: int | None
    after: int | None
    limit: int


# ---------------------------------------------------------------- client frames


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    # `1e400` is valid JSON but parses as inf, which would be echoed as `Infinity`:
    # not JSON, so browsers would drop the room's broadcast.
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is out of range")
    return value


def parse(text: str | None) -> dict[str, Any]:
    """Decode one client frame into a JSON object, or raise FrameError(bad_json)."""
    if text is None:
        raise FrameError(BAD_JSON, "frames must be JSON text, not binary")
    try:
        data = json.loads(text, parse_constant=_no_constants, parse_float=_finite_float)
    except (ValueError, RecursionError):
        raise FrameError(BAD_JSON, "frame is not valid JSON") from None
    if not isinstance(data, dict):
        raise FrameError(BAD_JSON, "frame must be a JSON object")
    return data


def frame_type(data: dict[str, Any]) -> str:
    kind = data.get("type")
    if not isinstance(kind, str) or not kind:
        raise FrameError(INVALID, '"type" must be a non-empty string')
    if kind not in CLIENT_TYPES:
        raise FrameError(UNKNOWN_TYPE, f"unknown type {kind[:40]!r}")
    return kind


def cost(kind: str) -> float:
    """Rate-limit tokens a frame of this type spends (unparseable frames cost a full one)."""
    return _COSTS.get(kind, 1.0)


def _storable(text: str) -> bool:
    # NUL and lone surrogates: valid JSON, but no database column takes them.
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _client_msg_id(data: dict[str, Any]) -> str:
    value = data.get("client_msg_id")
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > CLIENT_MSG_ID_MAX or not _storable(value):
        raise FrameError(INVALID, f"client_msg_id must be a string of at most {CLIENT_MSG_ID_MAX}")
    return value


def _extra_fields(data: dict[str, Any], client_msg_id: str) -> dict[str, Any]:
    extra = {k: v for k, v in data.items() if k not in SERVER_FIELDS}
    if len(extra) > EXTRA_FIELDS_MAX:
        raise FrameError(INVALID, "too many fields", client_msg_id=client_msg_id)
    for name, value in extra.items():
        small = not isinstance(value, str) or (len(value) <= EXTRA_VALUE_MAX and _storable(value))
        scalar = value is None or isinstance(value, str | int | float | bool)
        if len(name) > EXTRA_NAME_MAX or not _storable(name) or not scalar or not small:
            raise FrameError(
                INVALID,
                f"extra fields must be short scalars (at most {EXTRA_VALUE_MAX} characters)",
                client_msg_id=client_msg_id,
            )
    return extra


def message_in(data: dict[str, Any]) -> MessageIn:
    """Validate a `message` frame: content 1..CONTENT_MAX characters once trimmed."""
    client_msg_id = _client_msg_id(data)
    content = _content(data, client_msg_id)
    return MessageIn(content, client_msg_id, _extra_fields(data, client_msg_id))


def _content(data: dict[str, Any], client_msg_id: str = "") -> str:
    content = data.get("content")
    if not isinstance(content, str):
        raise FrameError(INVALID, "content must be a string", client_msg_id=client_msg_id)
    content = content.strip()
    if not content:
        raise FrameError(INVALID, "message is empty", client_msg_id=client_msg_id)
    if len(content) > CONTENT_MAX:
        raise FrameError(
            INVALID,
            f"message is longer than {CONTENT_MAX} characters",
            client_msg_id=client_msg_id,
        )
    if not _storable(content):
        raise FrameError(
            INVALID,
            "message contains characters that cannot be stored",
            client_msg_id=client_msg_id,
        )
    return content


def _named_message(data: dict[str, Any]) -> str:
    value = data.get("client_msg_id")
    ok = isinstance(value, str) and len(value) <= CLIENT_MSG_ID_MAX
    return value if ok else ""


def rate_limited(data: dict[str, Any]) -> FrameError:
    """The refusal of a frame over the rate limit, naming the message it drops."""
    return FrameError(
        RATE_LIMITED, "too many frames: slow down", client_msg_id=_named_message(data)
    )


def unavailable(data: dict[str, Any]) -> FrameError:
    """The reply to a frame the server failed to handle, naming the message it concerns."""
    return FrameError(
        UNAVAILABLE,
        "the server could not handle this frame; try again",
        client_msg_id=_named_message(data),
    )


def _message_id(data: dict[str, Any], name: str) -> int | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= DB_ID_MAX:
        raise FrameError(INVALID, f"{name} must be a message id (a non-negative integer)")
    return value


def target_in(data: dict[str, Any]) -> int:
    """Validate the `id` of an `edit` or `delete` frame: the message it changes."""
    message_id = _message_id(data, "id")
    if message_id is None:
        raise FrameError(INVALID, "id must be a message id (a non-negative integer)")
    return message_id


def edit_in(data: dict[str, Any]) -> EditIn:
    """Validate an `edit` frame: a message id and new content, checked as a message's."""
    return EditIn(target_in(data), _content(data))


def react_in(data: dict[str, Any]) -> ReactIn:
    """Validate a `react` frame: a message id and one emoji of REACTIONS."""
    message_id = target_in(data)
    emoji = data.get("emoji")
    if not isinstance(emoji, str) or emoji not in REACTIONS:
        raise FrameError(BAD_EMOJI, f"emoji must be one of {' '.join(REACTIONS)}")
    return ReactIn(message_id, emoji)


def _username(data: dict[str, Any]) -> str:
    name = data.get("username")
    if not isinstance(name, str) or not name.strip() or len(name) > 150:
        raise FrameError(INVALID, "username must be a user's name")
    return name.strip()


def mute_in(data: dict[str, Any]) -> tuple[str, int]:
    """Validate a `mute` frame: (username, minutes from 1 to MUTE_MINUTES_MAX)."""
    minutes = data.get("minutes")
    valid = isinstance(minutes, int) and not isinstance(minutes, bool)
    if not valid or not 1 <= minutes <= MUTE_MINUTES_MAX:
        raise FrameError(INVALID, f"minutes must be an integer from 1 to {MUTE_MINUTES_MAX}")
    return _username(data), minutes


def ban_in(data: dict[str, Any]) -> str:
    """Validate a `ban` frame: the username."""
    return _username(data)


def report_in(data: dict[str, Any]) -> tuple[int, str]:
    """Validate a `report` frame: (message id, reason of at most REPORT_REASON_MAX)."""
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > REPORT_REASON_MAX or not _storable(reason):
        raise FrameError(INVALID, f"reason must be text of at most {REPORT_REASON_MAX} characters")
    return target_in(data), reason.strip()


def history_in(data: dict[str, Any]) -> HistoryIn:
    """Validate a `history` frame: at most one of before/after, limit 1..HISTORY_MAX."""
    before, after = _message_id(data, "before"), _message_id(data, "after")
    if before is not None and after is not None:
        raise FrameError(INVALID, "send either before or after, not both")
    limit = data.get("limit", HISTORY_MAX)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= HISTORY_MAX:
        raise FrameError(INVALID, f"limit must be an integer from 1 to {HISTORY_MAX}")
    return HistoryIn(before, after, limit)


# ---------------------------------------------------------------- server frames


def encode(frame: Any) -> str:
    return json.dumps(frame, separators=(",", ":"), allow_nan=False)


def now_ms() -> int:
    return int(time.time() * 1000)


def welcome(*, room: str, user: str, history_json: str, online_json: str) -> str:
    """The welcome frame, encoded; history and online come encoded already (feeds.welcome)."""
    head = encode(
        {"type": "welcome", "message": "Connected to WebSocket server", "room": room, "user": user}
    )
    return f'{head[:-1]},"history":{history_json},"online":{online_json}}}'


def broadcast(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "broadcast", "data": data, "timestamp": now_ms()}


def message_edited(data: dict[str, Any]) -> dict[str, Any]:
    """A message's new text: `data` is the message as history gives it, with `edited_at`."""
    return {"type": "message_edited", "data": data}


def read(*, room: str, last_read_id: int) -> dict[str, Any]:
    """The user has read `room` up to `last_read_id` (sent to all of the user's sockets)."""
    return {"type": "read", "room": room, "id": last_read_id}


def reaction(*, message_id: int, emoji: str, user: str, on: bool) -> dict[str, Any]:
    """`user` added (`on`) or took back an emoji on a message of the room."""
    return {"type": "reaction", "id": message_id, "emoji": emoji, "user": user, "on": on}


def message_deleted(message_id: int) -> dict[str, Any]:
    return {"type": "message_deleted", "id": message_id}


def fit_history(
    messages: list[dict[str, Any]], *, keep_newest: bool
) -> tuple[list[dict[str, Any]], bool]:
    """The messages (oldest first) that fit in HISTORY_BYTES, kept from the newest or the
    oldest end, and whether any were left out."""
    total = count = 0
    for message in reversed(messages) if keep_newest else messages:
        total += len(encode(message)) + 1
        if total > HISTORY_BYTES and count:
            break
        count += 1
    if count == len(messages):
        return messages, False
    return (messages[-count:] if keep_newest else messages[:count]), True


def history(
    messages: list[dict[str, Any]], *, has_more: bool, request: HistoryIn
) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "history", "messages": messages, "has_more": has_more}
    if request.before is not None:
        frame["before"] = request.before
    if request.after is not None:
        frame["after"] = request.after
    return frame


def typing(*, user: str) -> dict[str, Any]:
    return {"type": "typing", "user": user}


def presence(*, joined: list[str], left: list[str]) -> dict[str, Any]:
    return {"type": "presence", "joined": joined, "left": left}


def error(
    code: str, message: str, *, client_msg_id: str = "", extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    frame = {"type": "error", "code": code, "message": message, **(extra or {})}
    if client_msg_id:
        frame["client_msg_id"] = client_msg_id
    return frame


def ack(kind: str, **fields: Any) -> dict[str, Any]:
    """The answer to a moderation frame (`mute`, `ban`, `report`): it took effect."""
    return {"type": "ack", "for": kind, **fields}


def ack_join(*, room: str, user: str) -> dict[str, Any]:
    return {"type": "ack", "for": "join", "room": room, "user": user}


def ack_duplicate(message: dict[str, Any]) -> dict[str, Any]:
    """The reply to a resent client_msg_id: already stored, not broadcast again."""
    return {
        "type": "ack",
        "for": "message",
        "duplicate": True,
        "id": message["id"],
        "client_msg_id": message["client_msg_id"],
        "room": message["room"],
        "created_at": message["created_at"],
    }
