"""An `EventSource` on `/events/` as a browser runs it, on a raw socket, light enough for 1,000.

What matters in fault tests is how a browser comes back: it waits the `retry:` the server
last sent (1-10 s at random, notifications.views.stream), then reconnects with
`Last-Event-ID` set to the last `id:` it saw, and keeps doing so while the server is
unreachable. A non-200 answer ends the EventSource for good. Every wait is bounded.
With `as_page`, it reconnects as Pulse's own pages drive their EventSource instead.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass
from typing import Any

SERVER_RESTART = '"reason": "server-restart"'  # in a stream-error's data
# static/notifications/live.js: scheduleReconnect() after an HTTP error, and its jitter
# after a `server-restart` stream-error.
PAGE_BACKOFF_FIRST_MS, PAGE_BACKOFF_MAX_MS = 500, 30000
RESTART_JITTER_MS = 1000
DEFAULT_RETRY_MS = 3000  # a browser's own default, before the server sent one
IO_TIMEOUT = 45.0  # a browser waits longer; a restarted server may be this busy


@dataclass
class Stream:
    """One HTTP connection of the EventSource: when it was tried, and when it opened."""

    started: float
    opened: float | None = None
    status: int | None = None


class SSETab:
    """One EventSource for one signed-in user; keeps what a page would: the events."""

    def __init__(
        self,
        *,
        port: int,
        session: str,
        source: str | None = None,
        as_page: bool = False,
    ) -> None:
        """`source`: the local address to connect from (a proxy limits connections per
        client address). `as_page`: reconnect as Pulse's pages do around their EventSource
        (static/notifications/live.js): within a second after a `server-restart`
        stream-error, with a backoff after an HTTP error, instead of waiting `retry:` or
        giving up as a bare EventSource does."""
        self.port, self.session = port, session
        self.source = source
        self.as_page = as_page
        self.restarting = False  # the last stream ended with a `server-restart`
        self.http_errors = 0  # in a row, as live.js counts `retries`
        self.last_event_id = ""
        self.retry_ms = DEFAULT_RETRY_MS
        self.retries_seen: list[int] = []
        self.events: list[tuple[str, str]] = []  # (event, data), keep-alives left out
        self.streams: list[Stream] = []
        self.failed = False
        self.opened = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._stopped = False

    def notifications(self) -> list[dict[str, Any]]:
        return [json.loads(data) for event, data in self.events if event == "notification"]

    def opened_after(self, moment: float) -> Stream | None:
        """The first stream opened after `moment`."""
        return next((s for s in self.streams if s.opened and s.started >= moment), None)

    async def run(self, *, until: float) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped and not self.failed and loop.time() < until:
            self.restarting = False
            await self._stream(until)
            if self._stopped or (self.failed and not self.as_page):
                break
            await asyncio.sleep(max(0.0, min(self._wait(), until - loop.time())))

    def _wait(self) -> float:
        """Seconds before the next connection (live.js scheduleReconnect and its
        `server-restart` handler, or the EventSource's own `retry:`)."""
        if self.failed:
            self.failed = False
            self.http_errors += 1
            base = min(PAGE_BACKOFF_MAX_MS, PAGE_BACKOFF_FIRST_MS * 2 ** min(self.http_errors, 6))
            return base * (0.5 + random.random()) / 1000
        if self.restarting and self.as_page:
            return random.random() * RESTART_JITTER_MS / 1000
        return self.retry_ms / 1000

    def close(self) -> None:
        self._stopped = True
        if self._writer is not None:
            self._writer.transport.abort()

    async def _stream(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        stream = Stream(started=loop.time())
        self.streams.append(stream)
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    "127.0.0.1", self.port, local_addr=(self.source, 0) if self.source else None
                ),
                IO_TIMEOUT,
            )
            self._writer = writer
            writer.write(self._request())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
            stream.status = int(head.split(b" ", 2)[1])
            if stream.status != 200:
                self.failed = True  # EventSource: "fail the connection", no reconnect
                return
            chunked = b"transfer-encoding: chunked" in head.lower()
            parser = _Parser(self, stream)
            while (left := until - loop.time()) > 0:
                data = await asyncio.wait_for(_next_chunk(reader, chunked), left)
                if not data:
                    return  # the server closed the stream
                parser.feed(data)
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            return
        finally:
            self._writer = None
            self.opened.clear()
            if writer is not None:
                writer.transport.abort()

    def _request(self) -> bytes:
        last = f"Last-Event-ID: {self.last_event_id}\r\n" if self.last_event_id else ""
        return (
            f"GET /events/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Accept: text/event-stream\r\nCache-Control: no-cache\r\n{last}"
            f"Cookie: sessionid={self.session}\r\n\r\n"
        ).encode()


async def _next_chunk(reader: asyncio.StreamReader, chunked: bool) -> bytes:
    """The next piece of the body: one chunk, or whatever arrived; b"" at the end."""
    if not chunked:
        return await reader.read(65536)
    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
    if size == 0:
        return b""
    data = await reader.readexactly(size + 2)
    return data[:-2]


class _Parser:
    """The event-stream format as the HTML standard parses it (fields, blank-line dispatch)."""

    def __init__(self, tab: SSETab, stream: Stream) -> None:
        self.tab, self.stream = tab, stream
        self.buffer = b""
        self.event, self.data, self.id = "", [], None

    def feed(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for raw in lines:
            self.line(raw.rstrip(b"\r").decode())

    def line(self, line: str) -> None:
        tab = self.tab
        if line == "":
            if self.id is not None:
                tab.last_event_id = self.id
            if self.data:
                tab.events.append((self.event or "message", "\n".join(self.data)))
                if self.event == "stream-error" and SERVER_RESTART in self.data[0]:
                    tab.restarting = True
                if self.event == "stream-open" and self.stream.opened is None:
                    tab.http_errors = 0
                    self.stream.opened = asyncio.get_running_loop().time()
                    tab.opened.set()
            self.event, self.data, self.id = "", [], None
            return
        if line.startswith(":"):
            return
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            self.event = value
        elif name == "data":
            self.data.append(value)
        elif name == "id" and "\0" not in value:
            self.id = value
        elif name == "retry" and value.isdigit():
            tab.retry_ms = int(value)
            tab.retries_seen.append(tab.retry_ms)
