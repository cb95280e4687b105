"""realtime.longpoll: a poll's JSON is exactly what the same stream carried as SSE."""

import json

from realtime.longpoll import parse_frames
from realtime.wire import KEEPALIVE, KICK_FRAMES, SESSION_ENDED, STREAM_OPEN, encode_event
from tests.support.streams import live_connection


def test_a_polls_events_are_the_streams_frames_with_data_parsed():
    conn = live_connection(**{"user-7": 3, "announcements": 0})
    hostile = {"title": "t\nid: 5", "body": "line1\r\nevent: read\n\ndata: x"}
    conn.push(encode_event("user-7", "notification", json.dumps(hostile), 4, 3))
    conn.push(encode_event("announcements", "announcement", json.dumps({"id": 1}), 1))
    events = parse_frames(STREAM_OPEN + conn.take() + KEEPALIVE)
    assert events == [
        {"id": "user-7:4,announcements:0", "event": "notification", "data": hostile},
        {"id": "user-7:4,announcements:1", "event": "announcement", "data": {"id": 1}},
    ]


def test_a_stream_error_is_an_event_without_a_position():
    (event,) = parse_frames(KICK_FRAMES[SESSION_ENDED])
    assert (event["event"], event["id"]) == ("stream-error", None)
    assert event["data"]["reason"] == SESSION_ENDED
