"""The WebSocket load client: one process, many authenticated chat sockets that only read.

Run by bench.ws_fanout as `python -m bench.ws_client`, driven by JSON lines on stdin (one
reply line per command) like bench.sse_client, so its CPU is measured apart from the
server's. Cheap on purpose: asyncio protocols over raw sockets (uvloop when installed),
the HTTP upgrade written by hand, server frames parsed by hand (they are never masked),
one regex per frame for the `seq` and send time the sender put in the message. Pings are
answered. With `deflate` it offers permessage-deflate as browsers do (uvicorn accepts it,
daphne does not) and inflates what comes compressed. Every wait is bounded.

Commands: {"cmd": "connect", "port", "path", "sessions": [...], "streams", "deflate",
           "concurrency", "paths": [...],         paths: one per session, instead of path
           "ports": [...], "rate"}                 ports: one per session; rate: connects/s
          {"cmd": "stats", "first": a, "last": b, "raw"}   deliveries of seq in [a, b),
                                                    and edits/deletes/reactions by type;
                                                    raw: every latency too
          {"cmd": "count"}                           deliveries so far (all of those)
          {"cmd": "quit"}
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import socket
import time
import zlib
from array import array
from collections import Counter
from typing import Any

from bench import commands
from bench.sse_client import percentile

# {"type":"broadcast","data":{"type":"message","seq":12,"t":1700000000.123456,...
# (the stock consumer's json.dumps puts spaces after the separators).
_SEQ = re.compile(rb'"seq": ?(\d+), ?"t": ?([0-9.]+)')
_WELCOME = re.compile(rb'\{"type": ?"welcome"')
# What bench.ws_sender's --mix sends reaches receivers as these (no seq: counted by type).
_CHANGE = re.compile(rb'\{"type": ?"(message_edited|message_deleted|reaction)"')
CONNECT_TIMEOUT = 30.0


class Totals:
    """Every delivery of a numbered message: its seq and latency, plus order checks."""

    def __init__(self) -> None:
        self.seqs = array("q")
        self.latencies = array("d")
        self.received = 0
        self.gaps = 0
        self.duplicates = 0
        self.closed = 0
        self.close_codes: Counter[int] = Counter()
        self.errors = 0
        self.changes: Counter[str] = Counter()  # edits, deletes, reactions, by frame type


def _pong(payload: bytes) -> bytes:
    # Client frames must be masked; a zero mask leaves the payload as it is.
    return bytes([0x8A, 0x80 | len(payload)]) + b"\0\0\0\0" + payload


class ChatSocket(asyncio.Protocol):
    """One WebSocket that reads and counts; open once the server's welcome arrived."""

    def __init__(
        self, totals: Totals, request: bytes, opened: asyncio.Future[bool], streams: int
    ) -> None:
        self.inflate: Any = None  # permessage-deflate, when the server agreed to it
        self.totals = totals
        self.request = request
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.buf = b""
        self.upgraded = False
        # The sender sends seq on its socket seq % streams: each of those is in order.
        self.streams = streams
        self.last_seq = [-1] * streams
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.totals.closed += 1
        self.totals.close_codes[self.close_code or 1006] += 1
        if not self.opened.done():
            self.opened.set_result(False)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.upgraded:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.totals.errors += 1
                self.transport.close()  # type: ignore[union-attr]
                return
            self.upgraded = True
            if b"permessage-deflate" in self.head[:end].lower():
                self.inflate = zlib.decompressobj(wbits=-15)
            data, self.head = self.head[end + 4 :], b""
        buf = self.buf + data if self.buf else data
        n = len(buf)
        pos = 0
        while n - pos >= 2:
            length = buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if n - pos < 4:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                start = pos + 4
            elif length == 127:
                if n - pos < 10:
                    break
                length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                start = pos + 10
            end = start + length
            if end > n:
                break
            opcode = buf[pos] & 0x0F
            if opcode == 1 and buf[pos] & 0x40:  # RSV1: a compressed message
                text = self.inflate.decompress(buf[start:end] + b"\0\0\xff\xff")
                self._text(text, 0, len(text), now)
            elif opcode == 1:
                self._text(buf, start, end, now)
            elif opcode == 9:
                self.transport.write(_pong(buf[start:end]))  # type: ignore[union-attr]
            elif opcode == 8:
                self.close_code = int.from_bytes(buf[start : start + 2], "big") if length else 1005
                self.transport.close()  # type: ignore[union-attr]
            pos = end
        self.buf = buf[pos:] if pos < n else b""

    def _text(self, buf: bytes, start: int, end: int, now: float) -> None:
        found = _SEQ.search(buf, start, end)
        if found is None:
            if _WELCOME.match(buf, start) and not self.opened.done():
                self.opened.set_result(True)
            elif change := _CHANGE.match(buf, start):
                self.totals.changes[change[1].decode()] += 1
                self.totals.received += 1
            return
        seq = int(found[1])
        totals = self.totals
        totals.seqs.append(seq)
        totals.latencies.append(now - float(found[2]))
        totals.received += 1
        stream = seq % self.streams
        last = self.last_seq[stream]
        if seq <= last:
            totals.duplicates += 1  # or reordered: either breaks the sender's order
        else:
            if last >= 0 and seq != last + self.streams:
                totals.gaps += 1
            self.last_seq[stream] = seq


def _cpu_seconds() -> float:
    import resource

    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def upgrade_request(port: int, path: str, session: str, *, deflate: bool = False) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    # What browsers offer; the server may accept (uvicorn does) or ignore it (daphne).
    offer = "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
    return (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\nCookie: sessionid={session}\r\n"
        f"{offer if deflate else ''}\r\n"
    ).encode()


class Client:
    def __init__(self) -> None:
        self.totals = Totals()
        self.sockets: list[ChatSocket] = []

    async def open(
        self, *, port: int, path: str, session: str, streams: int = 1, deflate: bool = False
    ) -> bool:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[bool] = loop.create_future()
        request = upgrade_request(port, path, session, deflate=deflate)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), CONNECT_TIMEOUT)
            _, chat = await loop.create_connection(
                lambda: ChatSocket(self.totals, request, opened, streams), sock=sock
            )
            self.sockets.append(chat)
            return await asyncio.wait_for(opened, CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            sock.close()
            return False

    async def connect(
        self,
        *,
        port: int,
        path: str,
        sessions: list[str],
        streams: int = 1,
        deflate: bool = False,
        concurrency: int = 64,
        paths: list[str] | None = None,
        ports: list[int] | None = None,
        rate: float = 0,
    ) -> dict[str, Any]:
        gate, pacer = asyncio.Semaphore(concurrency), commands.Pacer(rate)
        started = time.monotonic()

        async def one(session: str, path: str, port: int) -> bool:
            async with gate:
                await pacer.wait()
                return await self.open(
                    port=port, path=path, session=session, streams=streams, deflate=deflate
                )

        n = len(sessions)
        targets = zip(sessions, paths or [path] * n, ports or [port] * n, strict=True)
        results = await asyncio.gather(*(one(*target) for target in targets))
        ok = sum(results)
        return {
            "deflate": sum(chat.inflate is not None for chat in self.sockets),
            "connected": ok,
            "failed": len(sessions) - ok,
            "seconds": round(time.monotonic() - started, 3),
        }

    def stats(self, first: int, last: int, raw: bool = False) -> dict[str, Any]:
        """Deliveries of seq in [first, last), and order faults and closes since the last
        call (with `raw`, every latency in ms); forget everything below `last`."""
        totals = self.totals
        faults = (totals.gaps, totals.duplicates, totals.errors, Counter(totals.close_codes))
        changes = dict(totals.changes)
        totals.gaps = totals.duplicates = totals.errors = 0
        totals.close_codes.clear()
        totals.changes.clear()
        keep_seqs, keep_lat = array("q"), array("d")
        lat: list[float] = []
        for seq, latency in zip(totals.seqs, totals.latencies, strict=True):
            if first <= seq < last:
                lat.append(latency)
            elif seq >= last:
                keep_seqs.append(seq)
                keep_lat.append(latency)
        totals.seqs, totals.latencies = keep_seqs, keep_lat
        lat.sort()
        return {
            "delivered": len(lat),
            "p50_ms": round(percentile(lat, 0.50) * 1000, 2),
            "p95_ms": round(percentile(lat, 0.95) * 1000, 2),
            "p99_ms": round(percentile(lat, 0.99) * 1000, 2),
            "max_ms": round(lat[-1] * 1000, 2) if lat else None,
            "open": len(self.sockets) - totals.closed,
            "closed": totals.closed,
            "close_codes": {str(k): v for k, v in faults[3].items()},
            "gaps": faults[0],
            "duplicates": faults[1],
            "errors": faults[2],
            "changes": changes,
            "cpu_s": round(_cpu_seconds(), 3),
            **({"latencies_ms": [round(x * 1000, 2) for x in lat]} if raw else {}),
        }

    def close(self) -> None:
        for chat in self.sockets:
            if chat.transport:
                chat.transport.abort()


async def serve_commands() -> None:
    client = Client()
    await commands.serve(
        {
            "connect": client.connect,
            "stats": client.stats,
            "count": lambda: {"received": client.totals.received, "closed": client.totals.closed},
        },
        client.close,
    )


def main() -> None:
    commands.run_fast(serve_commands)


if __name__ == "__main__":
    main()
