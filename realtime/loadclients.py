"""Cheap clients of the four ways to read a stream, counting every byte they move.

Used by `manage.py compare_transports`: hundreds of clients in one asyncio process, so
each is a few lines over asyncio streams rather than an HTTP or WebSocket library, whose
buffering would hide the bytes on the wire. Every byte written or read on a socket
(request and response heads, chunk framing, WebSocket frame headers, pings) is counted in
a Meter; the HTTP they speak is the little this site's endpoints need: HTTP/1.1
keep-alive, `Content-Length` or chunked bodies, an SSE stream, a WebSocket of text frames.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

# Called with each event's name and parsed data, when it arrives.
OnEvent = Callable[[str, Any], None]
CONNECT_TIMEOUT = 30.0


@dataclass
class Meter:
    """What a set of clients did on the wire."""

    sent: int = 0
    received: int = 0
    requests: int = 0
    open: int = 0

    def snapshot(self) -> tuple[int, int]:
        """(bytes both ways, requests) so far."""
        return self.sent + self.received, self.requests


@dataclass(frozen=True)
class Target:
    """Where clients connect and who they are."""

    host: str
    port: int
    cookie: str  # `name=value` of a logged-in session

    @classmethod
    def from_url(cls, url: str, cookie: str) -> Target:
        parts = urlsplit(url)
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"expected http://host[:port], got {url!r}")
        return cls(parts.hostname, parts.port or 80, cookie)

    @property
    def authority(self) -> str:
        return f"{self.host}:{self.port}"


class Wire:
    """One TCP connection whose bytes are counted both ways."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, meter: Meter):
        self.reader, self.writer, self.meter = reader, writer, meter

    @classmethod
    async def open(cls, target: Target, meter: Meter) -> Wire:
        connect = asyncio.open_connection(target.host, target.port)
        reader, writer = await asyncio.wait_for(connect, CONNECT_TIMEOUT)
        meter.open += 1
        return cls(reader, writer, meter)

    async def send(self, data: bytes) -> None:
        self.meter.sent += len(data)
        self.writer.write(data)
        await self.writer.drain()

    async def until(self, separator: bytes) -> bytes:
        data = await self.reader.readuntil(separator)
        self.meter.received += len(data)
        return data

    async def some(self) -> bytes:
        data = await self.reader.read(65536)
        self.meter.received += len(data)
        return data

    async def exactly(self, size: int) -> bytes:
        data = await self.reader.readexactly(size)
        self.meter.received += len(data)
        return data

    def close(self) -> None:
        if not self.writer.is_closing():
            self.meter.open -= 1
            self.writer.close()


def get_request(target: Target, path: str, extra: str = "") -> bytes:
    """A GET as a browser's script would send it: session cookie, keep-alive."""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {target.authority}\r\nCookie: {target.cookie}\r\n{extra}\r\n"
    ).encode()


async def read_head(wire: Wire) -> tuple[int, dict[str, str]]:
    """The status and (lower-cased) headers of a response."""
    lines = (await wire.until(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers


async def read_chunk(wire: Wire) -> bytes:
    """One chunk of a chunked body with its CRLF (b"" for the last, whose empty trailer
    section is that CRLF)."""
    size = int((await wire.until(b"\r\n")).split(b";")[0], 16)
    data = await wire.exactly(size + 2)
    return data[:-2]


async def read_body(wire: Wire, headers: dict[str, str]) -> bytes:
    if headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while chunk := await read_chunk(wire):
            parts.append(chunk)
        return b"".join(parts)
    return await wire.exactly(int(headers.get("content-length", "0")))


def channel_query(channel: str) -> str:
    return f"channel={quote(channel, safe='')}"


async def read_sse(target: Target, meter: Meter, path: str, on_event: OnEvent) -> None:
    """Read an SSE stream until cancelled; raise if it is refused or ends.
    `on_event("open", None)` once the response has begun."""
    wire = await Wire.open(target, meter)
    try:
        meter.requests += 1
        await wire.send(get_request(target, path, "Accept: text/event-stream\r\n"))
        status, headers = await read_head(wire)
        if status != 200:
            raise ConnectionError(f"SSE {path}: HTTP {status}")
        on_event("open", None)
        chunked = headers.get("transfer-encoding", "").lower() == "chunked"
        text = b""
        while chunk := await (read_chunk(wire) if chunked else wire.some()):
            *blocks, text = (text + chunk).split(b"\n\n")
            for block in blocks:
                _sse_event(block, on_event)
        raise ConnectionError(f"SSE {path}: the stream ended")
    finally:
        wire.close()


def _sse_event(block: bytes, on_event: OnEvent) -> None:
    event, data = "message", []
    for line in block.decode().split("\n"):
        name, _, value = line.partition(": ")
        if name == "event":
            event = value
        elif name == "data":
            data.append(value)
    if data:
        on_event(event, json.loads("\n".join(data)))


class Poller:
    """Polls a JSON poll endpoint (`{"events", "cursor"}`) over one keep-alive connection,
    reopened when the server closes it."""

    def __init__(self, target: Target, meter: Meter, path: str, on_event: OnEvent) -> None:
        self.target, self.meter, self.path, self.on_event = target, meter, path, on_event
        self.cursor = ""
        self.wire: Wire | None = None

    async def poll(self, wait: float) -> int:
        """One poll; returns how many events it brought."""
        cursor = f"&cursor={quote(self.cursor, safe='')}" if self.cursor else ""
        request = get_request(self.target, f"{self.path}&wait={wait:g}{cursor}")
        self.meter.requests += 1
        try:
            status, headers, body = await self._exchange(request)
        except (OSError, asyncio.IncompleteReadError):
            # A server may close an idle keep-alive connection as the request goes out
            # (a browser retries then too): once more, on a new connection.
            status, headers, body = await self._exchange(request)
        if headers.get("connection", "").lower() == "close":
            self.close()
        if status != 200:
            raise ConnectionError(f"poll {self.path}: HTTP {status} {body[:200]!r}")
        answer = json.loads(body)
        for event in answer["events"]:
            self.on_event(event["event"], event["data"])
        self.cursor = answer["cursor"]
        return len(answer["events"])

    async def _exchange(self, request: bytes) -> tuple[int, dict[str, str], bytes]:
        if self.wire is None:
            self.wire = await Wire.open(self.target, self.meter)
        try:
            await self.wire.send(request)
            status, headers = await read_head(self.wire)
            return status, headers, await read_body(self.wire, headers)
        except (OSError, asyncio.IncompleteReadError):
            self.close()
            raise

    async def run(self, *, wait: float, interval: float = 0.0) -> None:
        """Poll until cancelled: again at once (long polls), or every `interval` seconds."""
        loop = asyncio.get_running_loop()
        due = loop.time()
        while True:
            await self.poll(wait)
            if interval:
                due += interval
                await asyncio.sleep(max(0.0, due - loop.time()))

    def close(self) -> None:
        if self.wire is not None:
            self.wire.close()
            self.wire = None


async def read_websocket(target: Target, meter: Meter, path: str, on_event: OnEvent) -> None:
    """Read `{"type": "event", "event", "data"}` frames from a WebSocket until cancelled;
    `on_event("open", None)` once the handshake is done."""
    wire = await Wire.open(target, meter)
    key = base64.b64encode(os.urandom(16)).decode()
    upgrade = (
        "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        f"Sec-WebSocket-Key: {key}\r\nOrigin: http://{target.authority}\r\n"
    )
    try:
        meter.requests += 1
        await wire.send(get_request(target, path, upgrade))
        status, _ = await read_head(wire)
        if status != 101:
            raise ConnectionError(f"WebSocket {path}: HTTP {status}")
        on_event("open", None)
        while True:
            opcode, payload = await _frame(wire)
            if opcode == 1:
                frame = json.loads(payload)
                if frame.get("type") == "event":
                    on_event(frame["event"], frame["data"])
            elif opcode == 9:
                await wire.send(_masked(0xA, payload))
            elif opcode == 8:
                raise ConnectionError(f"WebSocket {path}: closed {payload[:2].hex()}")
    finally:
        wire.close()


async def _frame(wire: Wire) -> tuple[int, bytes]:
    """One unfragmented, unmasked server frame (what daphne and uvicorn send)."""
    head = await wire.exactly(2)
    size = head[1] & 0x7F
    if size == 126:
        size = int.from_bytes(await wire.exactly(2), "big")
    elif size == 127:
        size = int.from_bytes(await wire.exactly(8), "big")
    return head[0] & 0x0F, await wire.exactly(size)


def _masked(opcode: int, payload: bytes) -> bytes:
    # Client frames must be masked; a zero mask leaves the payload as it is.
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + b"\0\0\0\0" + payload
