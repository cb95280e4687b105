"""The ticker's producer: arguments refused with a reason, one price per symbol per tick."""

from __future__ import annotations

import asyncio
import json
import random
import re
from io import StringIO

import pytest
import redis
from django.core.management import CommandError, call_command

from tests.support.published import published
from ticker import producer
from ticker.prices import MIN_PRICE, RandomWalk


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--symbols", "acme"], r"--symbols: 'acme' is not a symbol: 1 to 8 capital letters"),
        (["--symbols", "ACME,TOOLONGSYM"], r"'TOOLONGSYM' is not a symbol"),
        (["--symbols", "ACME,,GLOBX"], r"an empty name is not a symbol"),
        (["--symbols", ","], r"name at least one symbol"),
        (["--symbols", "ACME,ACME"], r"ACME is named twice"),
        (["--symbols", ",".join(f"S{chr(65 + i // 26)}{chr(65 + i % 26)}" for i in range(51))],
         r"at most 50 symbols, not 51"),
        (["--rate", "0"], r"--rate must be a number .* above 0 and at most 100, not '0'"),
        (["--rate", "fast"], r"--rate must be a number .* not 'fast'"),
        (["--rate", "inf"], r"--rate must be a number"),
        (["--rate", "101"], r"at most 100, not '101'"),
        (["--symbols", ",".join(f"S{chr(65 + i)}" for i in range(20)), "--rate", "60"],
         r"--rate 60 for 20 symbols is 1,200 updates/s; one producer publishes at most 1,000/s"),
        (["--seconds", "0"], r"--seconds must be a positive number, not '0'"),
        (["--seconds", "soon"], r"--seconds must be a positive number, not 'soon'"),
    ],
)  # fmt: skip
def test_bad_arguments_are_refused_with_a_reason(args, error):
    bounded = [] if "--seconds" in args else ["--seconds", "0.01"]  # should it run after all
    with pytest.raises(CommandError, match=error):
        call_command("run_ticker", *args, *bounded)


def test_each_tick_publishes_one_price_per_symbol_on_its_channel(pubsub):
    out = StringIO()
    call_command(
        "run_ticker", "--symbols", "AAA,BBB,CCC", "--rate", "50", "--seconds", "0.3", stdout=out
    )
    messages = published(pubsub)
    count = int(re.search(r"published ([\d,]+) prices", out.getvalue())[1].replace(",", ""))
    assert count == len(messages) > 0
    channels = [m["channel"] for m in messages]
    assert channels == ["ticker-AAA", "ticker-BBB", "ticker-CCC"] * (len(messages) // 3)
    for message in messages:
        data = json.loads(message["data"])
        assert message["event"] == "price" and message["latest"]
        assert message["channel"] == f"ticker-{data['symbol']}"
        assert data["price"] > 0 and set(data) == {
            "symbol", "price", "change", "change_pct", "time"
        }  # fmt: skip
    ids = [m["id"] for m in messages if m["channel"] == "ticker-AAA"]
    assert ids == sorted(set(ids))
    assert "/s per symbol (target 50/s)" in out.getvalue()


async def test_a_tick_sends_every_symbol_once_in_order():
    walk = RandomWalk(["AAA", "BBB"], rng=random.Random(7))
    stop = asyncio.Event()
    sent: list[tuple[str, float]] = []

    async def send(*, quote):
        sent.append((quote.symbol, quote.price))
        if len(sent) == 6:
            stop.set()

    stats = await producer.run(walk, rate=200, seconds=None, stop=stop, send=send)
    assert [symbol for symbol, _ in sent] == ["AAA", "BBB"] * 3
    assert (stats.ticks, stats.published, stats.failed) == (3, 6, 0)


async def test_a_producer_that_falls_behind_skips_ticks_instead_of_bursting():
    walk = RandomWalk(["AAA"])
    stop = asyncio.Event()
    sends: list[float] = []

    async def send(*, quote):
        sends.append(quote.price)
        if len(sends) == 2:
            await asyncio.sleep(0.25)  # a stall worth five ticks at 20/s
        if len(sends) == 5:
            stop.set()

    stats = await producer.run(walk, rate=20, seconds=None, stop=stop, send=send)
    # The ticks missed during the stall were skipped, not sent late one after another.
    assert stats.skipped >= 3 and stats.ticks == len(sends) == 5


async def test_a_failed_tick_is_counted_and_the_next_one_goes_on():
    walk = RandomWalk(["AAA"])
    stop = asyncio.Event()
    calls = 0

    async def send(*, quote):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise redis.ConnectionError("Redis went away")
        if calls == 3:
            stop.set()

    stats = await producer.run(walk, rate=200, seconds=None, stop=stop, send=send)
    assert (stats.failed, stats.ticks) == (1, 2)


def test_prices_walk_but_never_reach_zero():
    walk = RandomWalk(["AAA"], rng=random.Random(1))
    prices = [walk.step()[0].price for _ in range(5000)]
    assert len(set(prices)) > 100 and min(prices) >= MIN_PRICE
