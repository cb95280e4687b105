"""The fan-out hub without a server: encoding, coalescing, bounds, replay de-duplication."""

import pytest
from django_eventstream.utils import make_id, sse_encode_event

from notifications import hub as hub_module
from notifications.hub import (
    CLOSED,
    LIVE,
    SESSION_ENDED,
    STREAM_OPEN,
    Connection,
    ReplayRead,
    encode_event,
    get_hub,
)


def live_connection(**positions: int) -> Connection:
    conn = Connection(user_id=7, session_key="s1", positions=positions)
    conn.apply_catch_up(ReplayRead())
    assert conn.state is LIVE
    assert conn.take() == STREAM_OPEN
    return conn


@pytest.mark.parametrize(
    "data", ['{"a": 1}', "line1\r\nevent: read\nid: 999\n\ndata: x\x00<b>", "", "\r\r\n"]
)
def test_an_event_is_byte_for_byte_what_django_eventstream_sends(data):
    conn = live_connection(**{"user-7": 3, "announcements": 5})
    conn.push(encode_event("announcements", "announce\nment", data, 6))
    expected_id = make_id({"user-7": 3, "announcements": 6})
    assert conn.take() == sse_encode_event("announce\nment", data, event_id=expected_id).encode()


def test_events_that_pile_up_go_out_in_one_write_with_their_own_ids():
    conn = live_connection(**{"user-7": 1, "announcements": 0})
    for i in (1, 2, 3):
        conn.push(encode_event("announcements", "a", str(i), i))
    conn.push(encode_event("user-7", "notification", "n", 9))
    text = conn.take().decode()
    ids = [line[4:] for line in text.splitlines() if line.startswith("id: ")]
    assert ids == [
        "user-7:1,announcements:1",
        "user-7:1,announcements:2",
        "user-7:1,announcements:3",
        "user-7:9,announcements:3",
    ]
    assert conn.pending == [] and conn.pending_bytes == 0


def test_a_connection_over_its_bound_is_cut_off_not_buffered(monkeypatch):
    conn = live_connection(announcements=0)
    monkeypatch.setattr(hub_module, "MAX_BUFFERED_BYTES", 1000)
    dropped = []
    conn.on_abort = lambda: dropped.append(True)
    for i in range(20):
        conn.push(encode_event("announcements", "a", "x" * 100, i + 1))
    assert conn.state is CLOSED and conn.abort and dropped == [True]
    assert conn.pending == [] and conn.pending_bytes == 0


def test_live_events_during_a_replay_are_neither_lost_nor_repeated():
    conn = Connection(user_id=7, session_key=None, positions={"user-7": 10})
    conn.begin_catch_up()
    # Published while storage was being read: 11 is also in the read, 12 is not.
    conn.push(encode_event("user-7", "notification", "eleven", 11))
    conn.push(encode_event("user-7", "notification", "twelve", 12))
    conn.push(encode_event("user-7", "notification", "old", 9))
    read = ReplayRead()
    read.events = [encode_event("user-7", "notification", "eleven", 11)]
    assert conn.apply_catch_up(read)
    text = conn.take().decode()
    assert [line for line in text.splitlines() if line.startswith("data: ")] == [
        "data: eleven",
        "data: twelve",
    ]
    assert conn.positions == {"user-7": 12}


def test_a_reset_moves_the_position_and_is_announced():
    conn = Connection(user_id=7, session_key=None, positions={"user-7": 500})
    read = ReplayRead()
    read.resets = {"user-7": 4}
    conn.apply_catch_up(read)
    text = conn.take().decode()
    assert 'event: stream-reset\nid: user-7:4\ndata: {"channels": ["user-7"]}\n\n' in text


async def test_a_kick_ends_only_that_sessions_streams():
    hub = get_hub()
    mine = live_connection(**{"user-7": 0})
    other = Connection(user_id=7, session_key="s2", positions={"user-7": 0})
    other.apply_catch_up(ReplayRead())
    for conn in (mine, other):
        hub.by_user.setdefault(7, set()).add(conn)
    try:
        assert hub.kick(user_id=7, session_key="s1") == 1
        assert mine.state is CLOSED and mine.take() == SESSION_ENDED
        assert other.state is LIVE
    finally:
        hub.by_user.pop(7, None)


async def test_publish_reaches_only_connections_on_the_channel():
    hub = get_hub()
    a = live_connection(announcements=0)
    b = live_connection(**{"user-8": 0})
    hub.by_channel["announcements"] = {a}
    hub.by_channel["user-8"] = {b}
    try:
        assert hub.publish(encode_event("announcements", "a", "{}", 1)) == 1
        assert a.pending and not b.pending
    finally:
        hub.by_channel.clear()
