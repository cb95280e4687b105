"""Run the live ticker's producer: a random-walk price per symbol, published many times a second."""

from __future__ import annotations

import asyncio
import math
import signal
import threading
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from ticker import producer
from ticker.events import price_publish
from ticker.prices import RandomWalk
from ticker.symbols import DEFAULT_SYMBOLS, SymbolsError, parse_symbols

MAX_SYMBOLS = 50
MAX_RATE = 100.0
# Updates per second over all symbols. Each costs two Redis round trips, one after the
# other; measured, 10 symbols at 20/s keep the loop busy about 10% of the time here.
MAX_UPDATES_PER_SECOND = 1000


class Command(BaseCommand):
    help = (
        "Publish a random-walk price per symbol on the ticker's channels (ticker-<SYMBOL>), "
        "--rate times a second each, until Ctrl-C, SIGTERM or --seconds; then print the "
        "rate achieved."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--symbols",
            default=",".join(DEFAULT_SYMBOLS),
            metavar="ACME,GLOBX",
            help="comma-separated, 1 to 8 capital letters each (default: %(default)s)",
        )
        parser.add_argument(
            "--rate",
            default="20",
            metavar="PER_SECOND",
            help=f"updates per second per symbol, at most {MAX_RATE:g} (default: %(default)s)",
        )
        parser.add_argument(
            "--seconds",
            default=None,
            metavar="N",
            help="stop after N seconds (default: run until stopped)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        symbols, rate, seconds = self._check(options)
        walk = RandomWalk(symbols)
        self.stdout.write(
            f"publishing {_count(len(symbols), 'symbol')} at {rate:g}/s each on ticker-<SYMBOL> "
            f"({', '.join(symbols)}); Ctrl-C stops"
        )
        stats = asyncio.run(self._run(walk, rate, seconds))
        self.stdout.write(
            f"published {stats.published:,} prices in {stats.seconds:.1f} s: "
            f"{stats.rate:.1f}/s per symbol (target {rate:g}/s), "
            f"{_count(stats.skipped, 'tick')} skipped behind schedule, {stats.failed} failed; "
            f"publishing took {stats.busy / max(stats.seconds, 1e-9):.0%} of the time"
        )

    def _check(self, options: dict[str, Any]) -> tuple[list[str], float, float | None]:
        try:
            symbols = parse_symbols(options["symbols"], limit=MAX_SYMBOLS)
        except SymbolsError as exc:
            raise CommandError(f"--symbols: {exc}") from exc
        rate = _number(options["rate"])
        if rate is None or not 0 < rate <= MAX_RATE:
            raise CommandError(
                f"--rate must be a number of updates per second above 0 and at most "
                f"{MAX_RATE:g}, not {options['rate']!r}"
            )
        if rate * len(symbols) > MAX_UPDATES_PER_SECOND:
            raise CommandError(
                f"--rate {rate:g} for {len(symbols)} symbols is {rate * len(symbols):,.0f} "
                f"updates/s; one producer publishes at most {MAX_UPDATES_PER_SECOND:,}/s"
            )
        seconds = None
        if options["seconds"] is not None:
            seconds = _number(options["seconds"])
            if seconds is None or seconds <= 0:
                raise CommandError(
                    f"--seconds must be a positive number, not {options['seconds']!r}"
                )
        return symbols, rate, seconds

    async def _run(self, walk: RandomWalk, rate: float, seconds: float | None) -> producer.Stats:
        stop = asyncio.Event()
        with _stop_on_signals(stop):
            return await producer.run(
                walk, rate=rate, seconds=seconds, stop=stop, send=price_publish
            )


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _number(text: Any) -> float | None:
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


class _stop_on_signals:
    """Ctrl-C or SIGTERM: finish the tick in flight, then stop and print the summary. The
    tick takes milliseconds, or at most the Redis client's timeouts if Redis hangs."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, stop: asyncio.Event) -> None:
        self.stop = stop
        self.loop = asyncio.get_running_loop()
        # Signal handlers can only be set from the main thread.
        self.active = threading.current_thread() is threading.main_thread()

    def __enter__(self) -> None:
        if self.active:
            for signum in self.SIGNALS:
                self.loop.add_signal_handler(signum, self._stop)

    def __exit__(self, *exc: object) -> None:
        if self.active:
            for signum in self.SIGNALS:
                self.loop.remove_signal_handler(signum)

    def _stop(self) -> None:
        self.stop.set()
