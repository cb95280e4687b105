"""The live ticker end to end: `run_ticker` in its own process, real daphne servers, Redis.

Prices are latest values (realtime.latest): clients get them in growing id order per
channel, a late client gets the current price at once, and a client that stops reading
skips stale prices instead of the server buffering them for it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
import time
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from realtime import latest
from tests.support.factories import session_cookie
from tests.support.servers import Server
from tests.support.sse_client import SSEStream, open_stream
from tests.support.ticker import producer
from tests.support.waiting import until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

cookie_for = sync_to_async(session_cookie)


def channels_of(symbols: list[str]) -> list[str]:
    return [f"ticker-{symbol}" for symbol in symbols]


def position(event_id: str | None, channel: str) -> int:
    """The stream id's position for `channel` (ids read `ticker-A:41,ticker-B:17`)."""
    for part in (event_id or "").split(","):
        name, _, at = part.rpartition(":")
        if unquote(name) == channel:
            return int(at)
    raise AssertionError(f"no position for {channel} in {event_id!r}")


def latest_ids(channels: list[str]) -> dict[str, int]:
    """Each channel's newest id as stored in Redis (what a returning client should get)."""
    return {channel: row[0] for channel, row in latest.read(channels).items()}


def prices_of(events: list[tuple[str, int]], channel: str) -> list[int]:
    """The ids of `channel`'s prices among (channel, id) pairs, in the order received."""
    return [event_id for name, event_id in events if name == channel]


async def sse_prices(stream: SSEStream, into: list[tuple[str, int]], channels: list[str]) -> None:
    """Collect (channel, channel id) of each price a stream receives, until cancelled."""
    while True:
        event = await stream.next(timeout=60)
        if event.event == "price":
            channel = f"ticker-{event.json()['symbol']}"
            assert channel in channels
            into.append((channel, position(event.id, channel)))


async def ws_prices(ws: Any, into: list[tuple[str, int]]) -> None:
    while True:
        frame = json.loads(await ws.recv())
        assert frame["type"] == "event" and frame["event"] == "price", frame
        assert frame["channel"] == f"ticker-{frame['data']['symbol']}"
        into.append((frame["channel"], frame["id"]))


async def events_socket(server: Server, cookie: str | None, channels: list[str]) -> Any:
    headers = {"Origin": server.url}
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    query = "&".join(f"channel={channel}" for channel in channels)
    return await connect(
        f"{server.ws_url}/ws/events/?{query}", additional_headers=headers, open_timeout=5
    )


@pytest.mark.slow
async def test_clients_on_two_servers_get_prices_in_id_order_and_end_on_the_newest(
    server, second_server, redis_server, alice, bob
):
    symbols = ["ORDA", "ORDB", "ORDC"]
    channels = channels_of(symbols)
    params = {"channel": channels}
    streams = [
        await open_stream(server.url, session=await cookie_for(alice), params=params),
        await open_stream(second_server.url, session=await cookie_for(bob), params=params),
    ]
    ws = await events_socket(second_server, await cookie_for(alice), channels)
    received: list[list[tuple[str, int]]] = [[], [], []]
    readers = [
        asyncio.create_task(sse_prices(streams[0], received[0], channels)),
        asyncio.create_task(sse_prices(streams[1], received[1], channels)),
        asyncio.create_task(ws_prices(ws, received[2])),
    ]
    try:
        async with producer(redis_server.url, symbols, seconds=3) as running:
            output = await running.finished(timeout=60)
        assert "0 failed" in output
        newest = await asyncio.to_thread(latest_ids, channels)
        assert len(newest) == 3

        def all_got_the_newest() -> bool:
            for task in readers:
                if task.done():
                    task.result()  # a reader that failed says why
            return all(
                prices_of(got, channel)[-1:] == [newest[channel]]
                for got in received
                for channel in channels
            )

        deadline = time.monotonic() + 10
        while not all_got_the_newest():
            assert time.monotonic() < deadline, "a client never got the newest prices"
            await asyncio.sleep(0.05)
        for got in received:
            for channel in channels:
                ids = prices_of(got, channel)
                # Never an older price after a newer one, nor one twice.
                assert ids == sorted(set(ids)), (channel, ids)
                assert len(ids) >= 10  # live all along, not just the last value
    finally:
        for task in readers:
            task.cancel()
        await ws.close()
        for stream in streams:
            await stream.close()


@pytest.mark.slow
async def test_a_client_that_connects_late_gets_the_newest_prices_at_once(
    server, second_server, redis_server, alice
):
    symbols = ["LATEA", "LATEB"]
    channels = channels_of(symbols)
    async with producer(redis_server.url, symbols, seconds=1) as running:
        await running.finished(timeout=60)
    stored = await asyncio.to_thread(latest.read, channels)
    assert set(stored) == set(channels)

    began = time.monotonic()
    stream = await open_stream(
        second_server.url, session=await cookie_for(alice), params={"channel": channels}
    )
    ws = await events_socket(server, await cookie_for(alice), channels)
    try:
        over_sse = await stream.collect("price", 2, timeout=5)
        over_ws = [json.loads(await asyncio.wait_for(ws.recv(), 5)) for _ in channels]
        assert time.monotonic() - began < 5
        for event in over_sse:
            channel = f"ticker-{event.json()['symbol']}"
            event_id, _, data = stored[channel]
            assert (position(event.id, channel), event.json()) == (event_id, json.loads(data))
        for frame in over_ws:
            event_id, _, data = stored[frame["channel"]]
            assert (frame["id"], frame["data"]) == (event_id, json.loads(data))
        assert {f["channel"] for f in over_ws} == set(channels)
        assert await stream.quiet(0.5) == []  # the newest once: no history after it
    finally:
        await ws.close()
        await stream.close()


# ---------------------------------------------------------------- a slow raw client


class RawStream:
    """An SSE stream on a plain socket with a tiny receive buffer, read only when asked:
    a client that stops reading without closing (a frozen tab, a stalled network)."""

    def __init__(self, server: Server, cookie: str, channels: list[str]) -> None:
        self.sock = socket.socket()
        # Before connect: the window the client advertises stays small.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        self.sock.connect((server.host, server.port))
        query = "&".join(f"channel={channel}" for channel in channels)
        request = (
            f"GET /events/?{query} HTTP/1.1\r\nHost: {server.host}:{server.port}\r\n"
            f"Cookie: sessionid={cookie}\r\nAccept: text/event-stream\r\n\r\n"
        )
        self.sock.sendall(request.encode())
        self.buffer = b""
        self.closed = False

    def read_for(self, seconds: float) -> None:
        """Read whatever arrives for `seconds` (the stream ends only if the server ends it)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                return
            except ConnectionResetError:  # how the server drops a client too slow for it
                chunk = b""
            if not chunk:
                self.closed = True
                return
            self.buffer += chunk

    def prices(self) -> list[tuple[str, int]]:
        """(channel, channel id) of every complete price event so far."""
        body = self.buffer.partition(b"\r\n\r\n")[2].decode()
        out = []
        for block in body.split("\n\n")[:-1]:
            fields = dict(line.split(": ", 1) for line in block.split("\n") if ": " in line)
            if fields.get("event") == "price":
                channel = f"ticker-{json.loads(fields['data'])['symbol']}"
                out.append((channel, position(fields["id"], channel)))
        return out

    def close(self) -> None:
        self.sock.close()


# Prices published while the client does not read: ~1.2 MB of events at 10 symbols, several
# times what the kernel's buffers on both ends and the server's bounded buffer hold for it
# (~950 of these events, measured), so most of them must be skipped. Waited for by count,
# not time: a busy machine that publishes slower only makes the test take longer.
PUBLISHED_WHILE_PAUSED = 4000


@pytest.mark.slow
async def test_a_slow_client_skips_stale_prices_instead_of_buffering_them(
    server, redis_server, alice
):
    symbols = [f"SLOW{chr(65 + i)}" for i in range(10)]  # the most one stream may add
    channels = channels_of(symbols)

    def published() -> int:
        return sum(latest_ids(channels).values())

    before = await asyncio.to_thread(published)
    raw = RawStream(server, await cookie_for(alice), channels)
    try:
        await asyncio.to_thread(raw.read_for, 1.0)
        assert raw.buffer.startswith(b"HTTP/1.1 200"), raw.buffer[:300]
        async with producer(redis_server.url, symbols, seconds=120) as running:
            await until(
                lambda: asyncio.to_thread(lambda: published() - before >= PUBLISHED_WHILE_PAUSED),
                90,
                "prices published",
            )
            paused = await asyncio.to_thread(latest_ids, channels)
            # Only now the client reads again, as fast as it can, while prices keep coming.
            await asyncio.to_thread(raw.read_for, 2.0)
            output = await running.stop()
        assert "0 failed" in output
        newest = await asyncio.to_thread(latest_ids, channels)

        def got_the_newest() -> bool:
            raw.read_for(0.2)
            return raw.closed or all(
                prices_of(raw.prices(), channel)[-1:] == [newest[channel]] for channel in channels
            )

        await until(lambda: asyncio.to_thread(got_the_newest), 20, "the newest prices")
        assert not raw.closed, "the slow client was cut off"
        prices = raw.prices()
        # Of the prices published until it read again, it got far fewer: stale ones were
        # replaced by newer ones, not queued for it...
        sent = sum(paused.values()) - before
        got = [(channel, i) for channel, i in prices if i <= paused[channel]]
        assert len(got) <= sent // 2, (len(got), sent)
        for channel in channels:
            ids = prices_of(prices, channel)
            assert ids == sorted(set(ids)), channel
            # ...skipping many at a time on every symbol...
            assert max(b - a for a, b in itertools.pairwise(ids)) > 50, channel
            # ...and it ended on the newest price of each.
            assert ids[-1] == newest[channel], channel
    finally:
        raw.close()


async def test_anonymous_clients_and_channels_outside_the_kind_are_refused(server, alice):
    async with httpx.AsyncClient(base_url=server.url, timeout=5) as client:
        response = await client.get("/events/", params={"channel": "ticker-ACME"})
        assert response.status_code == 403
        assert response.json() == {"error": "authentication required"}
        client.cookies["sessionid"] = await cookie_for(alice)
        for channel in ("ticker-lower", "ticker-TOOLONGSYM", "ticker"):
            response = await client.get("/events/", params={"channel": ["ticker-ACME", channel]})
            assert response.status_code == 403, channel
            assert response.json() == {"error": "permission denied", "channels": [channel]}
    with pytest.raises(InvalidStatus) as refused:
        await events_socket(server, None, ["ticker-ACME"])
    assert refused.value.response.status_code == 403
    ws = await events_socket(server, await cookie_for(alice), ["ticker-lower"])
    try:
        frame = json.loads(await asyncio.wait_for(ws.recv(), 5))
        assert (frame["type"], frame["code"], frame["channels"]) == (
            "error", "forbidden", ["ticker-lower"]
        )  # fmt: skip
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 5)
        assert closed.value.rcvd.code == 4003
    finally:
        await ws.close()
