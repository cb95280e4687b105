"""Latest-value channels on an SSE stream that falls behind: the newest value replaces the
unsent one instead of queueing behind it, and no id claims a value still unsent."""

from __future__ import annotations

from realtime.sse import LIVE, STREAMS, Connection, ReplayRead
from realtime.wire import KEEPALIVE, STREAM_OPEN, event_message


def live_connection(**positions: int) -> Connection:
    conn = Connection(user_id=7, session_key="s1", positions=positions)
    conn.apply_catch_up(ReplayRead())
    assert conn.state is LIVE
    assert conn.take() == STREAM_OPEN
    return conn


def sent(data: bytes) -> list[tuple[str, str]]:
    """(data, id) of each event in what the writer sends."""
    out, event_id = [], ""
    for line in data.decode().splitlines():
        if line.startswith("id: "):
            event_id = line[4:]
        elif line.startswith("data: "):
            out.append((line[6:], event_id))
    return out


def price(channel: str, value: str, event_id: int) -> dict:
    return event_message(channel, "price", f'"{value}"', event_id, 0, latest=True)


async def test_a_delivered_latest_value_replaces_the_unsent_one_of_its_channel():
    conn = live_connection(**{"price-A": 0, "price-B": 0})
    messages = [price("price-A", "a1", 1), price("price-B", "b1", 1)]
    messages += [price("price-A", "a2", 2), price("price-A", "a3", 3)]
    await STREAMS.deliver((conn,), messages)
    assert conn.pending_bytes == sum(map(len, conn.pending))  # the bound counts what is left
    assert [data for data, _ in sent(conn.take())] == ['"b1"', '"a3"']
    assert conn.positions == {"price-A": 3, "price-B": 1}


async def test_a_newer_value_goes_last_so_no_id_claims_a_value_behind_it():
    conn = live_connection(**{"price-A": 0, "price-B": 0})
    await STREAMS.deliver((conn,), [price("price-A", "a1", 1), price("price-B", "b1", 1)])
    conn.write_raw(KEEPALIVE)
    await STREAMS.deliver((conn,), [price("price-A", "a2", 2), price("price-B", "b2", 2)])
    # A client cut off after any of these holds an id whose positions it has (or below a
    # value still on its way), so coming back gets it the newest of each.
    data = conn.take()
    assert data.startswith(KEEPALIVE)
    assert sent(data) == [
        ('"a2"', "price-A:2,price-B:1"),
        ('"b2"', "price-A:2,price-B:2"),
    ]


async def test_events_of_other_channels_still_queue_one_after_another():
    conn = live_connection(announcements=0)
    messages = [event_message("announcements", "a", str(i), i) for i in (1, 2, 3)]
    await STREAMS.deliver((conn,), messages)
    assert [data for data, _ in sent(conn.take())] == ["1", "2", "3"]
