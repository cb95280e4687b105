"""Long and short polls of a stream: an SSE stream's machinery, answered as one JSON body.

A poll is a realtime.sse Connection like any stream: the same channels and positions, the
same replay from storage, `stream-reset` and live delivery from the process's hub. Only
the way out differs. Instead of writing the stream's bytes as they come, a poll gathers
them until it holds events (or its wait is over) and answers them as JSON; the cursor is
the `id` of the last one, exactly what an SSE client would resume from. A held poll is a
future on the hub: no thread, no database connection (Django released the request's
before the wait began, realtime.sse_asgi).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from realtime import metrics
from realtime.sse import CLOSED, LIVE, Connection, Streams, joined
from realtime.sse_asgi import Receive, Respond, Send, until_disconnect

MAX_WAIT = 25.0
# A replay still being read when the wait is over (a slow database) may take this long more.
REPLAY_GRACE = 30.0
# Frames that carry no event for a poll: the stream's opening and its keep-alives.
_NOT_EVENTS = frozenset({"stream-open", "keep-alive"})

_held = 0


def held_polls() -> int:
    """Polls this process holds now (a gauge)."""
    return _held


def parse_frames(data: bytes) -> list[dict[str, Any]]:
    """The events in whole SSE frames of our own (realtime.wire), `data` parsed as JSON.

    A few lines rather than an SSE client library: the input is complete frames this
    process just encoded, never a network stream. An `id` that is no position (a
    `stream-error`'s literal `error`) becomes null.
    """
    out = []
    for block in data.decode().split("\n\n"):
        event, event_id, lines = "message", None, []
        for line in block.split("\n"):
            name, _, value = line.partition(": ")
            if name == "event":
                event = value
            elif name == "id":
                event_id = value
            elif name == "data" or line == "data:":
                lines.append(value)
        if lines and event not in _NOT_EVENTS:
            text = "\n".join(lines)
            out.append(
                {
                    "id": None if event_id in (None, "error") else event_id,
                    "event": event,
                    "data": json.loads(text) if text else None,
                }
            )
    return out


async def _gather(
    conn: Connection, local: Streams, wait: float, cursor: str
) -> tuple[list[dict[str, Any]], str]:
    """Events for `conn` once it has some and its replay page is complete, or its wait is
    over (at once for `wait` 0, after the replay); with the cursor after the last one."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    events: list[dict[str, Any]] = []
    while True:
        limit = wait if conn.state is LIVE else wait + REPLAY_GRACE
        left = start + limit - loop.time()
        if left <= 0:
            break
        try:
            async with asyncio.timeout(left):
                await conn.wait()
        except TimeoutError:
            continue  # the replay may have ended meanwhile: the limit is recomputed
        if conn.abort:
            break
        if conn.pending:
            events += parse_frames(conn.take())
        if conn.wants_more:
            conn.wants_more = False
            if events:
                break  # a page of replay: the cursor takes the client on from there
            local.catch_up_more(conn)
            continue
        if conn.state is CLOSED or (conn.state is LIVE and (events or wait <= 0)):
            break
    for event in reversed(events):
        if event["id"] is not None:
            cursor = event["id"]
            break
    return events, cursor


async def answer(conn: Connection, *, wait: float, cursor: str) -> bytes:
    """The JSON body of one poll: `{"events": [...], "cursor": "..."}`."""
    global _held
    _held += 1
    try:
        async with joined(conn, metrics.LONGPOLL_OPEN) as local:
            events, cursor = await _gather(conn, local, wait, cursor)
    finally:
        _held -= 1
    return json.dumps({"events": events, "cursor": cursor}).encode()


def responder(*, wait: float, cursor: str) -> Respond:
    """What answers a claimed poll on the ASGI connection (realtime.sse_asgi.claim_stream)."""

    async def respond(conn: Connection, send: Send, receive: Receive) -> None:
        watcher = asyncio.get_running_loop().create_task(until_disconnect(receive, conn))
        try:
            body = await answer(conn, wait=wait, cursor=cursor)
            if not watcher.done():  # else the client left: nobody to answer
                await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            watcher.cancel()

    return respond


async def body(conn: Connection, *, wait: float, cursor: str) -> AsyncIterator[bytes]:
    """The same answer through Django, where the request did not come through SSEStreams."""
    yield await answer(conn, wait=wait, cursor=cursor)
