"""The shared board's wire format: client frames checked here, server frames built here.

Every way a client frame can be malformed maps to one error code (docs/demos.md), so the
consumer passes services only well-typed values; what a text may hold, and whether a
card exists, is the services' rule.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from demos.models import Column

# A client frame is small: the longest legal one (a 200-character text, every character
# \u-escaped) is under 3 KB.
FRAME_MAX = 4096
CLIENT_OP_ID_MAX = 64
# ASCII: echoed in every operation, so its size on the wire is known.
_CLIENT_OP_ID = re.compile(rf"[A-Za-z0-9_.:-]{{1,{CLIENT_OP_ID_MAX}}}")
DB_ID_MAX = 2**63 - 1
# Indexes past a column's end are clamped; this only bounds what a client may send.
INDEX_MAX = 1_000_000

CLIENT_TYPES = ("sync", "create", "edit", "move")

BAD_JSON = "bad_json"
TOO_LARGE = "too_large"
UNKNOWN_TYPE = "unknown_type"
INVALID = "invalid"
NOT_FOUND = "not_found"
BOARD_FULL = "board_full"
RATE_LIMITED = "rate_limited"
UNAVAILABLE = "unavailable"

# Sustained flooding after the rate limit said no (the application may close with
# 1000 or 3000-4999 only).
CLOSE_RATE_LIMITED = 4008


class FrameError(Exception):
    """A client frame the server refuses: an `error` frame, and the socket stays open."""

    def __init__(self, code: str, message: str, *, client_op_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.client_op_id = client_op_id


@dataclass(frozen=True)
class CreateIn:
    column: str
    text: str
    index: int | None
    client_op_id: str


@dataclass(frozen=True)
class EditIn:
    card: int
    text: str
    client_op_id: str


@dataclass(frozen=True)
class MoveIn:
    card: int
    column: str
    index: int
    client_op_id: str


# ---------------------------------------------------------------- client frames


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def parse(text: str | None) -> dict[str, Any]:
    """Decode one client frame into a JSON object, or raise FrameError."""
    if text is None:
        raise FrameError(BAD_JSON, "frames must be JSON text, not binary")
    if len(text) > FRAME_MAX:
        raise FrameError(TOO_LARGE, f"frames may be at most {FRAME_MAX} characters")
    try:
        data = json.loads(text, parse_constant=_no_constants)
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


def client_op_id(data: dict[str, Any]) -> str:
    """The frame's client_op_id if it is a usable one, else "" (for error frames too)."""
    value = data.get("client_op_id")
    ok = isinstance(value, str) and _CLIENT_OP_ID.fullmatch(value) is not None
    return value if ok else ""


def _checked_op_id(data: dict[str, Any]) -> str:
    value = data.get("client_op_id")
    if value is None or value == "":
        return ""
    if client_op_id(data) != value:
        raise FrameError(
            INVALID,
            f"client_op_id must be 1 to {CLIENT_OP_ID_MAX} letters, digits or _.:-",
        )
    return value


def _integer(data: dict[str, Any], name: str, *, low: int, high: int, op_id: str) -> int:
    value = data.get(name)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise FrameError(
            INVALID, f"{name} must be an integer from {low} to {high}", client_op_id=op_id
        )
    return value


def _string(data: dict[str, Any], name: str, op_id: str) -> str:
    # What the string may hold is the service's rule (demos.services).
    value = data.get(name)
    if not isinstance(value, str):
        raise FrameError(INVALID, f"{name} must be a string", client_op_id=op_id)
    return value


def sync_in(data: dict[str, Any]) -> int | None:
    """Validate a `sync` frame: `since` is the last version the client holds, or null."""
    if data.get("since") is None:
        return None
    return _integer(data, "since", low=0, high=DB_ID_MAX, op_id="")


def create_in(data: dict[str, Any]) -> CreateIn:
    op_id = _checked_op_id(data)
    column, text = _string(data, "column", op_id), _string(data, "text", op_id)
    index = None
    if data.get("index") is not None:
        index = _integer(data, "index", low=0, high=INDEX_MAX, op_id=op_id)
    return CreateIn(column=column, text=text, index=index, client_op_id=op_id)


def edit_in(data: dict[str, Any]) -> EditIn:
    op_id = _checked_op_id(data)
    card = _integer(data, "card", low=1, high=DB_ID_MAX, op_id=op_id)
    return EditIn(card=card, text=_string(data, "text", op_id), client_op_id=op_id)


def move_in(data: dict[str, Any]) -> MoveIn:
    op_id = _checked_op_id(data)
    card = _integer(data, "card", low=1, high=DB_ID_MAX, op_id=op_id)
    column = _string(data, "column", op_id)
    index = _integer(data, "index", low=0, high=INDEX_MAX, op_id=op_id)
    return MoveIn(card=card, column=column, index=index, client_op_id=op_id)


def rate_limited(data: dict[str, Any]) -> FrameError:
    return FrameError(RATE_LIMITED, "too many frames: slow down", client_op_id=client_op_id(data))


def unavailable(data: dict[str, Any]) -> FrameError:
    return FrameError(
        UNAVAILABLE,
        "the server could not handle this frame; try again",
        client_op_id=client_op_id(data),
    )


# ---------------------------------------------------------------- server frames


def encode(frame: Any) -> str:
    # UTF-8 rather than \u escapes: a character is at most 4 bytes on the wire, which
    # keeps the largest snapshot and catch-up under daphne's 64 KiB message cap.
    return json.dumps(frame, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def op(version: int, kind: str, *, by: str, client_op_id: str, **fields: Any) -> dict[str, Any]:
    """One applied operation, as stored in the log and sent to every tab."""
    return {"version": version, "op": kind, **fields, "by": by, "client_op_id": client_op_id}


def ops(applied: list[dict[str, Any]]) -> dict[str, Any]:
    return {"type": "ops", "ops": applied}


def snapshot(*, board: str, version: int, cards: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    columns = [
        {"id": column.value, "title": column.label, "cards": cards.get(column.value, [])}
        for column in Column
    ]
    return {"type": "snapshot", "board": board, "version": version, "columns": columns}


def error(exc: FrameError) -> dict[str, Any]:
    frame = {"type": "error", "code": exc.code, "message": exc.message}
    if exc.client_op_id:
        frame["client_op_id"] = exc.client_op_id
    return frame
