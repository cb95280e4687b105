"""The SSE load client: one process, many authenticated EventSource-like connections.

Run by the benchmarks as `python -m bench.sse_client`, driven by JSON lines on stdin
(one reply line on stdout per command), so its CPU is measured apart from the server's.
Cheap on purpose: asyncio protocols over raw sockets (uvloop when installed), HTTP/1.1
chunked decoding and SSE framing by hand, one regex per event for the `seq` and send time
the publisher put in the payload. Every wait is bounded.

Commands: {"cmd": "connect", "port", "path", "sessions": [...], "concurrency",
           "last_event_ids": [...],                 one per session, to resume a stream
           "ports": [...], "rate"}                  ports: one per session; rate: connects/s
          {"cmd": "stats", "first": a, "last": b, "raw"}   deliveries of seq in [a, b);
                                                    raw: every latency too
          {"cmd": "count"}                           deliveries so far
          {"cmd": "quit"}
"""

from __future__ import annotations

import asyncio
import re
import resource
import socket
import time
from array import array
from typing import Any

from bench import commands

# {"seq": 12, "t": 1700000000.123456, ...} from the fan-out publisher, or the same pair
# as text inside a notification title ("seq=12 t=1700000000.123456").
_SEQ_JSON = re.compile(rb'"seq": ?(\d+), ?"t": ?([0-9.]+)')
_SEQ_TEXT = re.compile(rb"seq=(\d+) t=([0-9.]+)")
CONNECT_TIMEOUT = 30.0


class Totals:
    """Every delivery of a numbered event: its seq and latency, plus per-stream order checks."""

    def __init__(self) -> None:
        self.seqs = array("q")
        self.latencies = array("d")
        self.received = 0
        self.gaps = 0
        self.duplicates = 0
        self.closed = 0
        self.errors = 0
        self.keepalives = 0


class SSEConnection(asyncio.Protocol):
    def __init__(
        self,
        totals: Totals,
        request: bytes,
        opened: asyncio.Future[bool],
        *,
        record: bool = False,
    ) -> None:
        self.totals = totals
        self.request = request
        self.opened = opened
        self.transport: asyncio.Transport | None = None
        self.head = b""
        self.raw = bytearray()
        self.sse = b""
        self.in_body = False
        self.last_seq = -1
        self.received = 0
        self.last_id = ""  # like EventSource.lastEventId
        self.seqs: list[int] | None = [] if record else None  # every seq, in arrival order
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)  # type: ignore[attr-defined]

    def connection_lost(self, exc: Exception | None) -> None:
        self.totals.closed += 1
        if not self.opened.done():
            self.opened.set_result(False)
        if not self.lost.done():
            self.lost.set_result(exc)

    def data_received(self, data: bytes) -> None:
        now = time.time()
        if not self.in_body:
            self.head += data
            end = self.head.find(b"\r\n\r\n")
            if end < 0:
                return
            status = self.head[: self.head.find(b"\r\n")]
            if b" 200 " not in status:
                self.totals.errors += 1
                if not self.opened.done():
                    self.opened.set_result(False)
                self.transport.close()  # type: ignore[union-attr]
                return
            self.in_body = True
            data = self.head[end + 4 :]
            self.head = b""
        self.raw += data
        self._dechunk(now)

    def _dechunk(self, now: float) -> None:
        raw = self.raw
        pos = 0
        pieces = []
        while True:
            eol = raw.find(b"\r\n", pos)
            if eol < 0:
                break
            size = int(raw[pos:eol], 16)
            end = eol + 2 + size
            if len(raw) < end + 2:
                break
            pieces.append(bytes(raw[eol + 2 : end]))
            pos = end + 2
        if pos:
            del raw[:pos]
        if pieces:
            self._events(self.sse + b"".join(pieces), now)

    def _events(self, text: bytes, now: float) -> None:
        blocks = text.split(b"\n\n")
        self.sse = blocks.pop()
        totals = self.totals
        for block in blocks:
            at = block.find(b"id: ")
            if at >= 0 and (at == 0 or block[at - 1] == 10):
                end = block.find(b"\n", at)
                self.last_id = block[at + 4 : end if end >= 0 else None].decode()
            found = _SEQ_JSON.search(block) or _SEQ_TEXT.search(block)
            if found is None:
                if b"event: stream-open" in block and not self.opened.done():
                    self.opened.set_result(True)
                elif b"event: keep-alive" in block:
                    totals.keepalives += 1
                continue
            seq = int(found[1])
            self.received += 1
            if self.seqs is not None:
                self.seqs.append(seq)
            totals.seqs.append(seq)
            totals.latencies.append(now - float(found[2]))
            totals.received += 1
            if seq <= self.last_seq:
                totals.duplicates += 1
            elif self.last_seq >= 0 and seq != self.last_seq + 1:
                totals.gaps += 1
            self.last_seq = max(seq, self.last_seq)


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


class Client:
    def __init__(self) -> None:
        self.totals = Totals()
        self.connections: list[SSEConnection] = []

    async def open(
        self,
        *,
        port: int,
        path: str,
        session: str,
        last_event_id: str = "",
        record: bool = False,
        rcvbuf: int = 0,
    ) -> SSEConnection | None:
        """One stream, returned once `stream-open` arrived (None if it was refused).

        `rcvbuf`: a small socket receive buffer, so a client that stops reading fills the
        server's buffers quickly (tests of the slow-client cut-off)."""
        loop = asyncio.get_running_loop()
        resume = f"Last-Event-ID: {last_event_id}\r\n" if last_event_id else ""
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Accept: text/event-stream\r\nCookie: sessionid={session}\r\n{resume}\r\n"
        ).encode()
        opened: asyncio.Future[bool] = loop.create_future()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        try:
            await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), CONNECT_TIMEOUT)
            _, protocol = await loop.create_connection(
                lambda: SSEConnection(self.totals, request, opened, record=record), sock=sock
            )
            ok = await asyncio.wait_for(opened, CONNECT_TIMEOUT)
        except (OSError, TimeoutError):
            sock.close()
            return None
        self.connections.append(protocol)
        return protocol if ok else None

    async def connect(
        self,
        *,
        port: int,
        path: str,
        sessions: list[str],
        concurrency: int = 100,
        last_event_ids: list[str] | None = None,
        ports: list[int] | None = None,
        rate: float = 0,
    ) -> dict[str, Any]:
        gate, pacer = asyncio.Semaphore(concurrency), commands.Pacer(rate)
        started = time.monotonic()

        async def one(session: str, last_event_id: str, port: int) -> bool:
            async with gate:
                await pacer.wait()
                stream = await self.open(
                    port=port, path=path, session=session, last_event_id=last_event_id
                )
                return stream is not None

        resume = last_event_ids or [""] * len(sessions)
        targets = zip(sessions, resume, ports or [port] * len(sessions), strict=True)
        results = await asyncio.gather(*(one(*target) for target in targets))
        ok = sum(results)
        return {
            "connected": ok,
            "failed": len(sessions) - ok,
            "seconds": round(time.monotonic() - started, 3),
        }

    def stats(self, first: int, last: int, raw: bool = False) -> dict[str, Any]:
        """Deliveries of seq in [first, last) (with `raw`, every latency in ms); forget
        everything below `last`."""
        totals = self.totals
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
            "open": len(self.connections) - totals.closed,
            "closed": totals.closed,
            "gaps": totals.gaps,
            "duplicates": totals.duplicates,
            "errors": totals.errors,
            "keepalives": totals.keepalives,
            "cpu_s": round(_cpu_seconds(), 3),
            **({"latencies_ms": [round(x * 1000, 2) for x in lat]} if raw else {}),
        }

    def close(self) -> None:
        for connection in self.connections:
            if connection.transport:
                connection.transport.abort()


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


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
