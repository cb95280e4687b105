"""Lists of ticker symbols as people type them (`ACME,GLOBX`), checked with a clear reason."""

from __future__ import annotations

import re

from ticker.channels import SYMBOL_PATTERN

DEFAULT_SYMBOLS = ("ACME", "GLOBX", "INITECH", "UMBRL", "STARK", "WAYNE", "HOOLI", "PIEDP")
# What one page shows: one SSE stream carries at most 10 channels beyond a user's own.
PAGE_MAX_SYMBOLS = 10

_SYMBOL = re.compile(SYMBOL_PATTERN)


class SymbolsError(ValueError):
    """A symbol list that cannot be used; the message says why."""


def parse_symbols(text: str, *, limit: int) -> list[str]:
    """`ACME,GLOBX` -> ["ACME", "GLOBX"]; SymbolsError for a bad, repeated or extra symbol."""
    names = [name.strip() for name in text.split(",")]
    if not any(names):
        raise SymbolsError("name at least one symbol, e.g. ACME,GLOBX")
    seen: set[str] = set()
    for name in names:
        if not _SYMBOL.fullmatch(name):
            shown = repr(name[:20]) if name else "an empty name"
            raise SymbolsError(f"{shown} is not a symbol: 1 to 8 capital letters A-Z, e.g. ACME")
        if name in seen:
            raise SymbolsError(f"{name} is named twice")
        seen.add(name)
    if len(names) > limit:
        raise SymbolsError(f"at most {limit} symbols, not {len(names)}")
    return names
