"""A socket's outbox: order, the bound on a slow client, and what happens past it."""

from __future__ import annotations

import asyncio

import pytest

from feeds import protocol
from realtime import outbox as outbox_module
from realtime.outbox import CLOSED, MAX_QUEUED_FRAMES, Outbox


class FakeWire:
    """What the server buffers for the socket, set by the test."""

    def __init__(self) -> None:
        self.buffered_bytes = 0
        self.aborted = asyncio.Event()

    def buffered(self) -> int:
        return self.buffered_bytes

    def writable(self, limit: int) -> bool:
        return self.buffered_bytes < limit

    def flush(self) -> None:
        pass

    def abort(self) -> None:
        self.aborted.set()


@pytest.fixture(autouse=True)
def _fast_polls(monkeypatch) -> None:
    monkeypatch.setattr(outbox_module, "DRAIN_POLL_SECONDS", 0.001)


def socket_outbox(**kw) -> tuple[Outbox, asyncio.Queue, FakeWire]:
    sent: asyncio.Queue = asyncio.Queue()
    box = Outbox(sent.put, user_id=7, **kw)
    box.wire = FakeWire()  # type: ignore[assignment]
    return box, sent, box.wire  # type: ignore[return-value]


def frame(n: int) -> dict:
    return {"type": "websocket.send", "text": f"frame {n}"}


async def texts(sent: asyncio.Queue, count: int) -> list[str]:
    return [(await asyncio.wait_for(sent.get(), 3)).get("text") for _ in range(count)]


async def test_frames_keep_their_order_written_at_once_or_queued():
    box, sent, wire = socket_outbox()
    assert box.ready()
    await box.write_now(frame(1))
    wire.buffered_bytes = outbox_module.HIGH_WATER_BYTES  # the client lags: queue
    assert not box.ready()
    box.enqueue(frame(2), 7)
    await box.write("frame 3")  # the socket's own frame waits its turn
    assert sent.qsize() == 1
    wire.buffered_bytes = 0
    assert await texts(sent, 3) == ["frame 1", "frame 2", "frame 3"]


async def test_nothing_goes_out_before_the_welcome():
    box, sent, _ = socket_outbox(held=True)
    assert not box.ready()
    box.enqueue(frame(1), 7)
    box.release("welcome")
    assert await texts(sent, 2) == ["welcome", "frame 1"]
    assert box.ready()


async def test_a_client_too_far_behind_is_closed_with_4009_after_its_buffered_frames():
    box, sent, wire = socket_outbox()
    wire.buffered_bytes = outbox_module.HIGH_WATER_BYTES
    for n in range(MAX_QUEUED_FRAMES + 1):
        box.enqueue(frame(n), 7)
    assert not box.queue  # dropped: the client backfills instead
    await asyncio.sleep(0.01)
    assert sent.empty()  # the close waits for the server's buffer to drain
    wire.buffered_bytes = 0
    closing = await asyncio.wait_for(sent.get(), 3)
    assert closing == {"type": "websocket.close", "code": protocol.CLOSE_TOO_SLOW}
    box.enqueue(frame(0), 7)
    assert sent.empty() and box.state is CLOSED


async def test_a_byte_bound_applies_too():
    box, _, wire = socket_outbox()
    wire.buffered_bytes = outbox_module.HIGH_WATER_BYTES
    box.enqueue(frame(1), outbox_module.MAX_QUEUED_BYTES)
    box.enqueue(frame(2), 1)
    assert box.close_code == protocol.CLOSE_TOO_SLOW


async def test_a_client_that_never_reads_is_dropped_after_the_grace(monkeypatch):
    monkeypatch.setattr(outbox_module, "CLOSE_GRACE_SECONDS", 0.05)
    box, sent, wire = socket_outbox()
    wire.buffered_bytes = 1
    box.close(protocol.CLOSE_SIGNED_OUT)
    await asyncio.wait_for(wire.aborted.wait(), 3)
    assert sent.empty() and box.state is CLOSED


async def test_a_frame_the_server_refuses_drops_the_socket():
    async def refuse(message):
        raise RuntimeError("tried to send WebSocket message with size 70000")

    box = Outbox(refuse, user_id=7)
    box.wire = wire = FakeWire()  # type: ignore[assignment]
    await box.write_now(frame(1))
    assert wire.aborted.is_set() and box.state is CLOSED and not box.ready()
