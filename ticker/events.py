"""What the ticker publishes: one `price` event per symbol on its latest-value channel."""

from __future__ import annotations

import time

from realtime.api import apublish
from ticker.channels import PRICE_EVENT, ticker_channel
from ticker.prices import Quote


async def price_publish(*, quote: Quote) -> None:
    """Publish a symbol's new price now (the producer runs outside any transaction)."""
    data = quote.as_data(at_ms=int(time.time() * 1000))
    await apublish(ticker_channel(quote.symbol), PRICE_EVENT, data)
