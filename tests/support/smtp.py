"""A real SMTP server (aiosmtpd) on a free port, keeping what it receives for tests to parse."""

from __future__ import annotations

import asyncio
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.servers import free_port

# Recipients the server refuses at RCPT TO, as a mailbox that does not exist would (a bounce).
REFUSED_DOMAIN = "bounces.invalid"


class _Keep:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, _: Any):
        if address.endswith("@" + REFUSED_DOMAIN):
            return "550 5.1.1 no such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        if self.sink.refuse_data:
            return "451 4.3.0 try again later"
        with self.sink.lock:
            self.sink.raw.append(bytes(envelope.original_content or envelope.content))
        return "250 OK"


class SmtpSink:
    """An SMTP server on 127.0.0.1:<port>; `messages()` parses what it was sent."""

    def __init__(self) -> None:
        self.raw: list[bytes] = []
        self.lock = threading.Lock()
        self.refuse_data = False  # answer DATA with a temporary error (4xx)
        self.delay = 0.0  # seconds before answering DATA: a slow server, to stop a worker mid-batch
        self.port = free_port()
        self.controller = Controller(_Keep(self), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[EmailMessage]:
        with self.lock:
            raw = list(self.raw)
        return [message_from_bytes(r, policy=policy.default) for r in raw]  # type: ignore[misc]

    def wait_for(self, count: int, timeout: float = 30) -> list[EmailMessage]:
        """The messages once at least `count` arrived (AssertionError after `timeout`)."""
        deadline = time.monotonic() + timeout
        while len(self.raw) < count:
            assert time.monotonic() < deadline, f"{len(self.raw)} of {count} emails arrived"
            time.sleep(0.05)
        return self.messages()


def body_of(message: EmailMessage, subtype: str) -> str:
    """The text/plain or text/html part of a message."""
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None and part.get_content_type() == f"text/{subtype}", subtype
    return str(part.get_content())
