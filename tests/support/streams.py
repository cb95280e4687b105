"""SSE stream objects without a server, for the stream unit tests."""

from realtime.sse import LIVE, Connection, ReplayRead
from realtime.wire import STREAM_OPEN


def live_connection(**positions: int) -> Connection:
    conn = Connection(user_id=7, session_key="s1", positions=positions)
    conn.apply_catch_up(ReplayRead())
    assert conn.state is LIVE
    assert conn.take() == STREAM_OPEN
    return conn
