"""The ticker's live channels: `ticker-<SYMBOL>`, one latest price each, for logged-in users.

Registered with the delivery core in TickerConfig.ready(); the core's registry then decides
who may read them on `/events/` and `/ws/events/` (default deny for anything else).
"""

from __future__ import annotations

from typing import Any

KIND = "ticker"
# Capital letters only: `ticker-acme` is no channel of this kind, so it is refused.
SYMBOL_PATTERN = r"[A-Z]{1,8}"
PRICE_EVENT = "price"


def ticker_channel(symbol: str) -> str:
    return f"{KIND}-{symbol}"


def can_read(user: Any, key: str | None) -> bool:
    """Any logged-in user reads every symbol (the registry passes only active ones)."""
    return bool(user.is_authenticated)
