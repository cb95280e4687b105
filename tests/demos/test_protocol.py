"""Client frames of the shared board: every malformed one is named, none gets through."""

from __future__ import annotations

import json

import pytest

from demos import protocol
from demos.protocol import FrameError


def refusal(call, *args) -> tuple[str, str]:
    with pytest.raises(FrameError) as refused:
        call(*args)
    return refused.value.code, refused.value.message


@pytest.mark.parametrize(
    ("text", "code"),
    [
        (None, protocol.BAD_JSON),  # binary
        ("not json", protocol.BAD_JSON),
        ("[1, 2]", protocol.BAD_JSON),
        ('{"since": NaN}', protocol.BAD_JSON),
        ("[" * 100_000, protocol.TOO_LARGE),
        (json.dumps({"type": "create", "text": "x" * protocol.FRAME_MAX}), protocol.TOO_LARGE),
    ],
)
def test_frames_that_are_not_small_json_objects_are_refused(text, code):
    assert refusal(protocol.parse, text)[0] == code


def test_a_frame_needs_a_known_type():
    assert refusal(protocol.frame_type, {})[0] == protocol.INVALID
    assert refusal(protocol.frame_type, {"type": 7})[0] == protocol.INVALID
    assert refusal(protocol.frame_type, {"type": "delete"}) == (
        protocol.UNKNOWN_TYPE,
        "unknown type 'delete'",
    )


@pytest.mark.parametrize(
    "frame",
    [
        {"card": "7", "column": "todo", "index": 0},
        {"card": True, "column": "todo", "index": 0},
        {"card": 0, "column": "todo", "index": 0},
        {"card": 7, "column": "todo", "index": 1.5},
        {"card": 7, "column": "todo", "index": -1},
        {"card": 7, "column": "todo", "index": 10**7},
        {"card": 7, "column": "todo"},
        {"card": 7, "column": None, "index": 0},
        {"card": 7, "column": "todo", "index": 0, "client_op_id": "spaces are not ok"},
        {"card": 7, "column": "todo", "index": 0, "client_op_id": "x" * 65},
        {"card": 7, "column": "todo", "index": 0, "client_op_id": 5},
    ],
)
def test_malformed_moves_are_invalid(frame):
    assert refusal(protocol.move_in, frame)[0] == protocol.INVALID


def test_refusals_name_the_operation_when_its_id_is_usable():
    with pytest.raises(FrameError) as refused:
        protocol.edit_in({"card": 3, "text": None, "client_op_id": "op-1"})
    assert protocol.error(refused.value) == {
        "type": "error",
        "code": "invalid",
        "message": "text must be a string",
        "client_op_id": "op-1",
    }
    assert protocol.rate_limited({"client_op_id": "op-2"}).client_op_id == "op-2"
    assert protocol.rate_limited({"client_op_id": "no good"}).client_op_id == ""


def test_well_formed_frames_pass_their_fields_through():
    assert protocol.create_in({"column": "doing", "text": " hi "}) == protocol.CreateIn(
        column="doing", text=" hi ", index=None, client_op_id=""
    )
    assert protocol.move_in(
        {"card": 7, "column": "done", "index": 99, "client_op_id": "a:1"}
    ) == protocol.MoveIn(card=7, column="done", index=99, client_op_id="a:1")
    assert protocol.sync_in({"since": None}) is None
    assert protocol.sync_in({}) is None
    assert protocol.sync_in({"since": 12}) == 12
    assert refusal(protocol.sync_in, {"since": -1})[0] == protocol.INVALID


def test_server_frames_are_compact_utf8_json():
    assert protocol.encode({"text": "é🚀"}) == '{"text":"é🚀"}'
