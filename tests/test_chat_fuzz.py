"""Property-based fuzzing of the chat consumer: thousands of random frames, every reply
within the protocol, the connection never crashes (no 1011, no traceback)."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.asgi import application
from feeds import presence, ratelimit
from feeds.models import Message, Room
from realtime import redis_state
from tests.support.factories import session_cookie

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

SERVER_TYPES = {"welcome", "broadcast", "history", "typing", "presence", "ack", "error"}
ERROR_CODES = {"bad_json", "unknown_type", "invalid", "rate_limited"}

json_scalar = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
    st.text(max_size=50),
)  # fmt: skip
json_value = st.recursive(
    json_scalar,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=10,
)
field_value = st.one_of(
    json_value, st.text(max_size=3000), st.integers(-5, 10**20), st.just(""), st.just("0")
)
near_valid = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "history", "typing", "join", "nope", "", "MESSAGE"])},
    optional={
        "content": field_value,
        "client_msg_id": field_value,
        "before": field_value,
        "after": field_value,
        "limit": field_value,
        "user": field_value,
        "id": field_value,
        "extra": field_value,
    },
)
frame = st.one_of(
    near_valid.map(json.dumps),
    json_value.map(json.dumps),
    st.text(max_size=200),
    st.binary(max_size=100),
    st.sampled_from(['{"type": "message", "content": NaN}', "[]", "null", '{"type": 1}', "{"]),
    # Out-of-range floats: valid JSON that Python reads as inf.
    st.builds(
        lambda exp, name: (
            json.dumps({"type": "message", "content": "hi"})[:-1] + f', "{name}": {exp}}}'
        ),
        st.sampled_from(["1e400", "-1e309", "1.5E999", "[1e400]"]),
        st.sampled_from(["x", "limit", "before"]),
    ),
)


def _strict_json(text: str) -> dict:
    """Parse a reply as a browser would: `Infinity` and `NaN` are not JSON."""

    def refuse(name: str) -> None:
        raise AssertionError(f"the server sent {name}, which is not JSON: {text[:200]}")

    return json.loads(text, parse_constant=refuse)


async def roundtrip(frames: list[str | bytes], cookie: str, replies: list[dict]) -> None:
    socket = WebsocketCommunicator(
        application,
        "/ws/chat/fuzz/",
        headers=[(b"host", b"testserver"), (b"origin", b"http://testserver"),
                 (b"cookie", f"sessionid={cookie}".encode())],
    )  # fmt: skip
    connected, _ = await socket.connect(timeout=5)
    assert connected
    try:
        for i, item in enumerate(frames):
            key = "bytes" if isinstance(item, bytes) else "text"
            await socket.send_input({"type": "websocket.receive", key: item})  # empty too
            # A sentinel after each frame: its ack proves the consumer is still serving.
            await socket.send_to(text_data=json.dumps({"type": "join", "n": i}))
            while True:
                output = await socket.receive_output(timeout=5)
                assert output["type"] == "websocket.send", output  # never a close
                reply = _strict_json(output["text"])
                replies.append(reply)
                if reply["type"] == "ack" and reply.get("for") == "join":
                    break
    finally:
        await socket.disconnect()
        await presence.settle()
        await redis_state.close_async_client()


@pytest.fixture
def fuzz_user(db, monkeypatch):
    # Generous budgets: the fuzzer tests the handlers, not the flood limit.
    monkeypatch.setattr(ratelimit, "BUCKET_SIZE", 10**9)
    monkeypatch.setattr(ratelimit, "REFILL_PER_SECOND", 10**9)
    user = get_user_model().objects.create_user("fuzzer", password="fuzz-password-123")
    Room.objects.create(slug="fuzz", title="Fuzz")
    return user, session_cookie(user)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(frames=st.lists(frame, min_size=1, max_size=60))
def test_random_frames_get_protocol_replies_and_never_break_the_socket(fuzz_user, frames):
    user, cookie = fuzz_user
    replies: list[dict] = []
    # Examples share the fixture's user: count only what this one stored.
    before = Message.objects.filter(author=user).count()
    asyncio.run(roundtrip(frames, cookie, replies))
    assert replies[0]["type"] == "welcome"
    for reply in replies:
        assert reply["type"] in SERVER_TYPES, reply
        if reply["type"] == "error":
            assert reply["code"] in ERROR_CODES, reply
            assert isinstance(reply["message"], str) and reply["message"]
        if reply["type"] == "broadcast":
            data = reply["data"]
            assert data["user"] == "fuzzer" and data["room"] == "fuzz"
            assert 0 < len(data["content"].strip()) <= 2000
    stored = Message.objects.filter(author=user).count() - before
    assert stored == len({r["data"]["id"] for r in replies if r["type"] == "broadcast"})
