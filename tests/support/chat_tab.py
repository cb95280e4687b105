"""A chat room tab as `static/feeds/chat.js` drives it, on a raw socket, light enough for 1,000.

Fault tests need many clients that react to a broken connection exactly as the browser
client does: the same backoff and jitter, the same backfill with `history` `after`, the
same resend of unconfirmed messages by `client_msg_id`. A library WebSocket client costs
too much CPU at that count, so the handshake and the frames are written by hand (server
frames are never masked; client frames are, as RFC 6455 requires). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import random
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

# static/feeds/chat.js, onClose() (tests/test_client_doubles.py checks these still match):
#   slow = code === CLOSE_RATE_LIMITED || code === CLOSE_TOO_MANY_CONNECTIONS
#   base = slow ? 10000 : Math.min(15000, 500 * 2 ** Math.min(attempts - 1, 5))
#   delay = slow ? base * (0.75 + Math.random() * 0.5) : base * Math.random()
# and `if (attempts >= 3 && !(await stillWelcome())) return;` before it.
BACKOFF_FIRST_MS = 500
BACKOFF_MAX_MS = 15000
BACKOFF_MAX_DOUBLINGS = 5
RATE_LIMITED_BACKOFF_MS = 10000
RATE_LIMITED_JITTER_LOW, RATE_LIMITED_JITTER_SPAN = 0.75, 0.5
ASK_API_AFTER_ATTEMPTS = 3
# chat.js: stop on these, reconnect on every other code.
CLOSE_SIGNED_OUT, CLOSE_ACCESS_REVOKED, CLOSE_RATE_LIMITED = 4001, 4003, 4008
CLOSE_TOO_MANY_CONNECTIONS = 4029
SLOW_CODES = (CLOSE_RATE_LIMITED, CLOSE_TOO_MANY_CONNECTIONS)  # chat.js waits ~10 s after these
CLOSE_ABNORMAL = 1006  # what a browser reports for a refused or dropped connection
# chat.js: a restarting server process (1012) is left for another at once, after
#   setTimeout(connect, Math.random() * RESTART_JITTER_MS), with no attempt counted.
CLOSE_SERVICE_RESTART = 1012
RESTART_JITTER_MS = 1000
HISTORY_RETRY_S = 1.0  # chat.js retries a rate-limited history page after 1 s

# A browser waits longer still; a restarted server that is busy may take this long.
IO_TIMEOUT = 45.0


def reconnect_delay(code: int, attempts: int, rng: random.Random) -> float:
    """Seconds chat.js waits before reconnecting attempt number `attempts` after `code`."""
    if code in SLOW_CODES:
        jitter = RATE_LIMITED_JITTER_LOW + rng.random() * RATE_LIMITED_JITTER_SPAN
        return RATE_LIMITED_BACKOFF_MS * jitter / 1000
    base = min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** min(attempts - 1, BACKOFF_MAX_DOUBLINGS))
    return base * rng.random() / 1000  # full jitter


def client_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """A final, masked client frame."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, 0x80 | n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 0x80 | 127]) + n.to_bytes(8, "big")
    key = os.urandom(4)
    stream = (key * (n // 4 + 1))[:n]
    masked = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")
    return head + key + masked


async def read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next whole server message: (opcode, payload); continuation frames joined."""
    opcode, parts = 0, []
    while True:
        b0, b1 = await reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            length = int.from_bytes(await reader.readexactly(2), "big")
        elif length == 127:
            length = int.from_bytes(await reader.readexactly(8), "big")
        payload = await reader.readexactly(length)
        kind = b0 & 0x0F
        if kind >= 0x8:  # control frames come whole, even between fragments
            return kind, payload
        opcode = opcode or kind
        parts.append(payload)
        if b0 & 0x80:
            return opcode, b"".join(parts)


@dataclass
class Connection:
    """One WebSocket of the tab: when it was tried, opened, and how it ended."""

    started: float
    welcomed: float | None = None
    close_code: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)


class ChatTab:
    """One tab of `/chat/<slug>/` for one signed-in user (chat.js's state and handlers)."""

    def __init__(
        self,
        *,
        port: int,
        slug: str,
        session: str,
        username: str,
        rng: random.Random,
        source: str | None = None,
    ) -> None:
        """`source`: the local address to connect from (a proxy limits connections per
        client address)."""
        self.port, self.slug, self.session, self.me = port, slug, session, username
        self.local_addr = (source, 0) if source else None
        self.rng = rng
        self.attempts = 0
        self.stopped = False
        self.last_seen_id = 0
        # chat.js completeId / nextOf: every message of the room up to complete_id is
        # shown (None until the first welcome anchors it); links past it wait in _next.
        self.complete_id: int | None = None
        self._next: dict[int, int] = {}
        self.shown: set[int] = set()
        # Each shown message's current text ("" once deleted), and the deleted ones.
        self.contents: dict[int, str] = {}
        self.deleted: set[int] = set()
        self.pending: dict[str, str] = {}  # client_msg_id -> content, unconfirmed
        self.confirmed: Counter[str] = Counter()  # how: broadcast, backfill, duplicate ack
        self.refused: dict[str, str] = {}  # client_msg_id -> error code the server sent
        self.sent: list[str] = []  # every client_msg_id this tab was asked to send
        self.resent = 0  # unconfirmed messages sent on a (re)connect, as chat.js does
        self.connections: list[Connection] = []
        self.history_query: dict[str, Any] | None = None
        self.welcomed = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None

    # -- what the tests look at ---------------------------------------------------------

    @property
    def current(self) -> Connection | None:
        return self.connections[-1] if self.connections else None

    def welcomed_after(self, moment: float) -> Connection | None:
        """The first connection opened (welcome received) after `moment`."""
        return next((c for c in self.connections if c.welcomed and c.started >= moment), None)

    # -- the connection loop (chat.js connect() / onClose()) ----------------------------

    async def run(self, *, until: float) -> None:
        """Connect, and reconnect as chat.js does, until stopped or the loop's clock
        reaches `until`."""
        loop = asyncio.get_running_loop()
        while not self.stopped and loop.time() < until:
            code = await self._connection(until)
            if self.stopped or loop.time() >= until:
                break
            if code in (CLOSE_SIGNED_OUT, CLOSE_ACCESS_REVOKED):
                self.stopped = True
                break
            if code == CLOSE_SERVICE_RESTART:
                await asyncio.sleep(
                    min(self.rng.random() * RESTART_JITTER_MS / 1000, until - loop.time())
                )
                continue
            self.attempts += 1
            if self.attempts >= ASK_API_AFTER_ATTEMPTS and not await self._still_welcome():
                break
            delay = reconnect_delay(code, self.attempts, self.rng)
            await asyncio.sleep(max(0.0, min(delay, until - loop.time())))

    async def _connection(self, until: float) -> int:
        loop = asyncio.get_running_loop()
        conn = Connection(started=loop.time())
        self.connections.append(conn)
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port, local_addr=self.local_addr),
                IO_TIMEOUT,
            )
            writer.write(self._upgrade_request())
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), IO_TIMEOUT)
            if not head.startswith(b"HTTP/1.1 101"):
                conn.close_code = CLOSE_ABNORMAL  # a refused handshake, as a browser sees it
                return conn.close_code
            self._writer = writer  # open: chat.js may send from here on
            conn.close_code = await self._read(reader, writer, conn, until)
        except (OSError, EOFError, TimeoutError, asyncio.IncompleteReadError):
            conn.close_code = CLOSE_ABNORMAL
        finally:
            self._writer = None
            self.welcomed.clear()
            if writer is not None:
                writer.transport.abort()
        return conn.close_code

    async def _read(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        conn: Connection,
        until: float,
    ) -> int:
        loop = asyncio.get_running_loop()
        while True:
            left = until - loop.time()
            if left <= 0:
                return 1000
            try:
                opcode, payload = await asyncio.wait_for(read_frame(reader), left)
            except TimeoutError:
                return 1000
            if opcode == 0x1:
                self._frame(json.loads(payload), conn)
            elif opcode == 0x9:
                writer.write(client_frame(payload, 0xA))
            elif opcode == 0x8:
                code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
                writer.write(client_frame(payload[:2], 0x8))
                return code

    def _upgrade_request(self) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        return (
            f"GET /ws/chat/{self.slug}/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
            f"Origin: http://127.0.0.1:{self.port}\r\nCookie: sessionid={self.session}\r\n\r\n"
        ).encode()

    async def _still_welcome(self) -> bool:
        """chat.js stillWelcome(): a 403 from the rooms API, or a list without the room,
        stops the tab; a network error keeps it retrying."""
        request = (
            f"GET /api/chat/rooms/ HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n"
            f"Accept: application/json\r\nCookie: sessionid={self.session}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        writer = None
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.port, local_addr=self.local_addr),
                IO_TIMEOUT,
            )
            writer.write(request)
            response = await asyncio.wait_for(reader.read(), IO_TIMEOUT)
        except (OSError, TimeoutError):
            return True
        finally:
            if writer is not None:
                writer.transport.abort()
        head, _, body = response.partition(b"\r\n\r\n")
        if head.startswith(b"HTTP/1.1 403"):
            self.stopped = True
            return False
        if head.startswith(b"HTTP/1.1 200"):
            rooms = json.loads(_dechunk(head, body))["rooms"]
            if not any(room["slug"] == self.slug for room in rooms):
                self.stopped = True
                return False
        return True

    # -- frames (chat.js handlers) ------------------------------------------------------

    def _frame(self, frame: dict[str, Any], conn: Connection) -> None:
        kind = frame.get("type")
        if kind == "welcome":
            self._welcome(frame, conn)
        elif kind == "broadcast":
            self._show(frame["data"], how="broadcast")
        elif kind == "message_edited":
            self._change(frame["data"])
        elif kind == "message_deleted":
            self._change({"id": frame["id"], "deleted": True})
        elif kind == "history":
            self.history_query = None
            if "before" in frame:
                return
            for m in frame["messages"]:
                self._show(m)
            if frame["has_more"] and frame["messages"]:
                self._request_history({"after": frame["messages"][-1]["id"]})
            else:
                self._resend_pending()  # backfill done
        elif kind == "ack":
            if frame.get("for") == "message" and frame.get("client_msg_id"):
                self._resolve(frame["client_msg_id"], how="duplicate ack")
        elif kind == "error":
            conn.errors.append(frame)
            cmid = frame.get("client_msg_id")
            if cmid and cmid in self.pending:
                # chat.js keeps a rate-limited one for a Retry button; both are explicit.
                self.refused[cmid] = frame["code"]
                del self.pending[cmid]
            elif frame.get("code") == "rate_limited" and self.history_query:
                query = self.history_query
                asyncio.get_running_loop().call_later(HISTORY_RETRY_S, self._request_history, query)

    def _welcome(self, frame: dict[str, Any], conn: Connection) -> None:
        conn.welcomed = asyncio.get_running_loop().time()
        self.attempts = 0
        history = frame["history"]
        if self.complete_id is None:  # first welcome: nothing older is needed
            self.complete_id = (history[0]["prev"] or 0) if history else 0
        for m in history:
            self._show(m)
        self.welcomed.set()
        # A message this tab never got lies below the newest it has (a broadcast lost, or
        # more missed than the welcome holds): fetch from the last point with no gap.
        if self.complete_id < self.last_seen_id:
            self._request_history({"after": self.complete_id})
        else:
            self._resend_pending()

    def _show(self, m: dict[str, Any], how: str = "backfill") -> None:
        self._link(m)
        if m["id"] in self.shown:
            self._change(m)  # chat.js: edited or deleted since it was shown
            return
        self.shown.add(m["id"])
        self.contents[m["id"]] = m["content"]
        self._change(m)
        self.last_seen_id = max(self.last_seen_id, m["id"])
        if m["user"] == self.me and m.get("client_msg_id"):
            self._resolve(m["client_msg_id"], how)

    def _change(self, m: dict[str, Any]) -> None:
        """chat.js applyChange(): a tombstone is final, an edit replaces the text."""
        if m["id"] not in self.shown or m["id"] in self.deleted:
            return
        if m.get("deleted"):
            self.deleted.add(m["id"])
            self.contents[m["id"]] = ""
        elif "edited_at" in m:
            self.contents[m["id"]] = m["content"]

    def _link(self, m: dict[str, Any]) -> None:
        """chat.js link(): chain `m` after its `prev`; move complete_id along the chain."""
        prev = m["prev"] or 0
        if self.complete_id is None or prev < self.complete_id:
            return
        self._next[prev] = m["id"]
        while self.complete_id in self._next:
            self.complete_id = self._next.pop(self.complete_id)

    def _resolve(self, cmid: str, how: str) -> None:
        if self.pending.pop(cmid, None) is not None:
            self.confirmed[how] += 1

    def _request_history(self, query: dict[str, Any]) -> None:
        self.history_query = query
        self._send({"type": "history", **query})

    def _resend_pending(self) -> None:
        for cmid in list(self.pending):
            self.resent += self._transmit(cmid)

    def _send(self, frame: dict[str, Any]) -> None:
        if self._writer is not None:
            self._writer.write(client_frame(json.dumps(frame).encode()))

    def _transmit(self, cmid: str) -> bool:
        if cmid not in self.pending or self._writer is None:
            return False
        self._send({"type": "message", "content": self.pending[cmid], "client_msg_id": cmid})
        return True

    # -- the composer -------------------------------------------------------------------

    def send_message(self, content: str) -> str:
        """chat.js sendMessage(): keep it as pending, send it now if the socket is open
        (else the next welcome sends it)."""
        cmid = uuid.uuid4().hex
        self.sent.append(cmid)
        self.pending[cmid] = content
        self._transmit(cmid)
        return cmid

    def drop(self) -> None:
        """Lose the connection as a network does (the tab sees 1006 and reconnects)."""
        if self._writer is not None:
            self._writer.transport.abort()

    def close(self) -> None:
        self.stopped = True
        if self._writer is not None:
            self._writer.transport.abort()


def _dechunk(head: bytes, body: bytes) -> bytes:
    if b"transfer-encoding: chunked" not in head.lower():
        return body
    out, rest = [], body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out.append(rest[:size])
        rest = rest[size + 2 :]
    return b"".join(out)
