"""`/ticker/` and who may read the ticker's channels."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import AnonymousUser

from realtime import channels
from ticker.symbols import DEFAULT_SYMBOLS

pytestmark = pytest.mark.django_db


def test_the_page_needs_a_login(client):
    response = client.get("/ticker/")
    assert response.status_code == 302 and response["Location"].startswith("/login/")


def test_the_page_lists_the_default_symbols_and_streams_their_channels(alice_client):
    response = alice_client.get("/ticker/")
    assert response.status_code == 200
    page = response.content.decode()
    for symbol in DEFAULT_SYMBOLS:
        assert f'data-symbol="{symbol}"' in page
    expected = " ".join(f"ticker-{symbol}" for symbol in DEFAULT_SYMBOLS)
    assert f'data-channels="{expected}"' in page
    assert 'href="/ticker/" class="active"' in page  # in the nav, marked as the current page


def test_the_page_shows_the_symbols_asked_for(alice_client):
    page = alice_client.get("/ticker/?symbols=ACME,ZZZ").content.decode()
    assert page.count('data-symbol="') == 2
    assert 'data-channels="ticker-ACME ticker-ZZZ"' in page


@pytest.mark.parametrize(
    ("symbols", "error"),
    [
        ("acme", "&#x27;acme&#x27; is not a symbol: 1 to 8 capital letters A-Z"),
        ("ACME,ACME", "ACME is named twice"),
        (",".join(f"S{chr(65 + i)}" for i in range(11)), "At most 10 symbols, not 11"),
        ("<script>", "&#x27;&lt;script&gt;&#x27; is not a symbol"),
    ],
)
def test_a_bad_symbol_list_gets_a_clear_error_page(alice_client, symbols, error):
    response = alice_client.get("/ticker/", {"symbols": symbols})
    assert response.status_code == 400
    page = response.content.decode()
    assert error in page
    assert "ticker.js" not in page and "<script>" not in page.split("</header>")[1]


def test_logged_in_users_read_every_symbol_and_nobody_else_reads_any(alice):
    assert channels.can_read(alice, "ticker-ACME")
    assert not channels.can_read(AnonymousUser(), "ticker-ACME")
    alice.is_active = False
    assert not channels.can_read(alice, "ticker-ACME")


@pytest.mark.parametrize("channel", ["ticker-acme", "ticker-TOOLONGSYM", "ticker-", "ticker"])
def test_a_channel_outside_the_kind_is_readable_by_nobody(alice, channel):
    assert not channels.can_read(alice, channel)
