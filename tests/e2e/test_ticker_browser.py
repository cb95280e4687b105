"""The ticker page in headless Chromium, with `run_ticker` publishing in its own process."""

from __future__ import annotations

import re

import pytest
from playwright.async_api import expect

from tests.support.browser import RECORD_VIOLATIONS, chromium, log_in, violations
from tests.support.ticker import producer

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


async def test_the_page_shows_prices_that_change_while_the_producer_runs(
    server, redis_server, alice
):
    async with producer(redis_server.url, ["PAGEA", "PAGEB"], seconds=60), chromium() as browser:
        context = await browser.new_context(locale="en-US")  # the formats checked below
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        await log_in(page, server.url, "alice")
        await page.click("nav >> text=Ticker")
        await expect(page.locator("tr[data-symbol]")).to_have_count(8)  # the default symbols

        await page.goto(f"{server.url}/ticker/?symbols=PAGEA,PAGEB")
        await expect(page.locator("#ticker-status")).to_have_text("Live")
        price = page.locator('tr[data-symbol="PAGEA"] .price')
        await expect(price).to_have_text(re.compile(r"^\d[\d,]*\.\d\d$"), timeout=15_000)
        first = await price.text_content()
        await expect(price).not_to_have_text(first, timeout=10_000)  # it moves
        await expect(page.locator('tr[data-symbol="PAGEB"] .price')).not_to_have_text("—")
        await expect(page.locator('tr[data-symbol="PAGEA"] .change-pct')).to_have_text(
            re.compile(r"^([+-]\d+\.\d\d|0\.00)%$")
        )
        await expect(page.locator(".flash-up, .flash-down").first).to_be_attached()
        await expect(page.locator("#ticker-rate")).to_have_text(re.compile(r"^\d+ updates/s$"))
        await expect(page.locator("#ticker-idle")).to_be_hidden()
        assert await violations(page) == []
