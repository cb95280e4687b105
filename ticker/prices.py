"""Made-up prices: a random walk per symbol, for the live ticker demo."""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass
from typing import Any

# Each step moves a price by about this share of itself (a standard deviation).
STEP_VOLATILITY = 0.0008
MIN_PRICE = 0.01


@dataclass
class Quote:
    symbol: str
    price: float
    open: float

    def as_data(self, at_ms: int) -> dict[str, Any]:
        """What a client gets: the price, its change since the producer started, a time."""
        change = self.price - self.open
        return {
            "symbol": self.symbol,
            "price": round(self.price, 2),
            "change": round(change, 2),
            "change_pct": round(100 * change / self.open, 2),
            "time": at_ms,
        }


def opening_price(symbol: str) -> float:
    """A stable start between 20 and 500 per symbol, so a restart looks familiar."""
    return 20 + (zlib.crc32(symbol.encode()) % 48_000) / 100


class RandomWalk:
    """Prices that drift by a small random step each tick and never reach zero."""

    def __init__(self, symbols: list[str], *, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.quotes = [Quote(s, opening_price(s), opening_price(s)) for s in symbols]

    def step(self) -> list[Quote]:
        for quote in self.quotes:
            move = math.exp(self.rng.gauss(0.0, STEP_VOLATILITY))
            quote.price = max(MIN_PRICE, quote.price * move)
        return self.quotes
