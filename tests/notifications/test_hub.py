"""SSE streams without a server: encoding, coalescing, bounds, replay de-duplication."""

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django_eventstream.utils import make_id, sse_encode_event

from notifications.services import notification_create
from realtime import sse as hub_module
from realtime.sse import CATCHING_UP, CLOSED, LIVE, STREAMS, Connection, ReplayRead, streams
from realtime.wire import KICK, encode_event, event_message
from tests.support.streams import live_connection


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
    mine = live_connection(**{"user-7": 0})
    other = Connection(user_id=7, session_key="s2", positions={"user-7": 0})
    other.apply_catch_up(ReplayRead())
    kick = {"type": KICK, "session": "s1", "reason": "session-ended"}
    await STREAMS.deliver((mine, other), [kick])
    assert mine.state is CLOSED
    frame = mine.take()
    assert frame.startswith(b"event: stream-error\n")
    assert b'"reason": "session-ended"' in frame
    assert other.state is LIVE


async def test_an_event_reaches_only_streams_that_carry_its_channel():
    a = live_connection(announcements=0)
    b = live_connection(**{"user-8": 0})
    await STREAMS.deliver((a, b), [event_message("announcements", "a", "{}", 1)])
    assert a.pending and not b.pending


def test_an_event_after_one_the_stream_missed_replays_the_gap_instead_of_skipping_it():
    conn = live_connection(**{"user-7": 10})
    # 11's publish failed somewhere; 12 names it as the event before it.
    conn.push(encode_event("user-7", "notification", "twelve", 12, prev=11))
    assert conn.take() == b""
    assert conn.state is CATCHING_UP and conn.wants_more
    assert conn.positions == {"user-7": 10}
    read = ReplayRead()
    read.events = [
        encode_event("user-7", "notification", "eleven", 11),
        encode_event("user-7", "notification", "twelve", 12),
    ]
    assert conn.apply_catch_up(read)
    text = conn.take().decode()
    assert [line for line in text.splitlines() if line.startswith(("data: ", "id: "))] == [
        "id: user-7:11",
        "data: eleven",
        "id: user-7:12",
        "data: twelve",
    ]
    assert conn.state is LIVE


def test_an_event_that_follows_the_position_goes_straight_out():
    conn = live_connection(**{"user-7": 10})
    conn.push(encode_event("user-7", "notification", "eleven", 11, prev=10))
    assert conn.state is LIVE and not conn.wants_more
    assert b"data: eleven" in conn.take()


def test_an_event_at_or_below_the_position_is_not_sent_again():
    conn = live_connection(**{"user-7": 10})
    conn.push(encode_event("user-7", "notification", "ten again", 10, prev=9))
    conn.push(encode_event("user-7", "notification", "late nine", 9, prev=8))
    assert conn.take() == b"" and conn.state is LIVE


def test_events_without_prev_arriving_late_are_still_sent():
    conn = live_connection(announcements=6)
    conn.push(encode_event("announcements", "announcement", "five", 5))
    assert b"data: five" in conn.take()
    assert conn.positions == {"announcements": 6}


def test_a_gap_shown_by_the_backlog_starts_another_read():
    conn = Connection(user_id=7, session_key=None, positions={"user-7": 10})
    conn.begin_catch_up()
    conn.push(encode_event("user-7", "notification", "thirteen", 13, prev=12))
    read = ReplayRead()  # read before 11 and 12 committed
    read.events = [encode_event("user-7", "notification", "eleven", 11)]
    assert not conn.apply_catch_up(read)
    assert conn.state is CATCHING_UP and conn.wants_more
    assert conn.positions == {"user-7": 11}


@pytest.mark.django_db(transaction=True)
async def test_the_hub_reads_a_missed_notification_from_the_database(alice):
    channel = f"user-{alice.pk}"
    hub = streams()
    conn = Connection(user_id=alice.pk, session_key=None, positions={channel: 0})
    hub.attach(conn)
    try:
        await hub._replay_task
        assert conn.state is LIVE
        conn.take()
        lost = await sync_to_async(notification_create)(recipient=alice, title="lost")
        later = await sync_to_async(notification_create)(recipient=alice, title="later")
        # Only `later` reaches this hub; it names `lost` as the one before it.
        message = event_message(channel, "notification", "{}", later.pk, lost.pk)
        await STREAMS.deliver((conn,), [message])
        await asyncio.wait_for(conn.wait(), 5)  # what the stream's writer does (sse.frames)
        assert conn.wants_more
        conn.wants_more = False
        hub.catch_up_more(conn)
        await asyncio.wait_for(hub._replay_task, 5)
        text = conn.take().decode()
        titles = [json.loads(line[6:])["title"] for line in text.splitlines() if "data: " in line]
        assert titles == ["lost", "later"]
        assert conn.positions == {channel: later.pk} and conn.state is LIVE
    finally:
        hub.detach(conn)
