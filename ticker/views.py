"""`/ticker/`: the live price table. Prices arrive over SSE (`/events/`), not in the page."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from ticker.channels import ticker_channel
from ticker.symbols import DEFAULT_SYMBOLS, PAGE_MAX_SYMBOLS, SymbolsError, parse_symbols


@require_GET
@login_required
def ticker_page(request: HttpRequest) -> HttpResponse:
    """The table of `?symbols=ACME,GLOBX` (or the default ones), filled in live by the page."""
    asked = request.GET.get("symbols", "")
    try:
        symbols = parse_symbols(asked, limit=PAGE_MAX_SYMBOLS) if asked else list(DEFAULT_SYMBOLS)
    except SymbolsError as exc:
        message = str(exc)
        context = {"error": message[:1].upper() + message[1:], "symbols": []}
        return render(request, "ticker/ticker.html", context, status=400)
    context = {
        "symbols": symbols,
        "channels": " ".join(ticker_channel(symbol) for symbol in symbols),
    }
    return render(request, "ticker/ticker.html", context)
