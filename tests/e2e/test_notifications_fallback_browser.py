"""The notification stream behind a proxy that buffers responses, in headless Chromium:
the page long-polls the same events, says so, gets each once, and takes the stream back
once it gets through."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page, expect

from notifications.services import notification_create
from tests.support.browser import chromium, log_in
from tests.support.proxy import Proxy

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

create = sync_to_async(notification_create)


async def live_on(page: Page, transport: str, title: str, timeout: float = 15_000) -> None:
    conn = page.locator("#conn-state")
    await expect(conn).to_have_attribute("data-state", "open", timeout=timeout)
    await expect(conn).to_have_attribute("data-transport", transport)
    await expect(conn).to_have_attribute("title", title)


async def titles_once(page: Page, titles: list[str]) -> None:
    await expect(page.locator("#inbox-list li.item .item-title")).to_have_text(titles)
    await expect(page.locator("#bell-badge")).to_have_text(str(len(titles)))


async def test_a_buffering_proxy_gets_polls_then_the_stream_back_with_nothing_lost(server, alice):
    await create(recipient=alice, title="earlier")
    async with Proxy(server.port, buffer=True) as proxy, chromium() as browser:
        context = await browser.new_context()
        await context.clock.install()  # the page's timers, fast-forwarded below
        page = await context.new_page()
        await log_in(page, proxy.url, "alice")
        await live_on(page, "poll", "Live · polling")
        await titles_once(page, ["earlier"])

        await create(recipient=alice, title="while polling")
        await titles_once(page, ["while polling", "earlier"])

        proxy.buffer = False  # the proxy lets streams through now
        await page.clock.fast_forward(61_000)
        await live_on(page, "sse", "Live · SSE")
        await create(recipient=alice, title="on the stream")
        await titles_once(page, ["on the stream", "while polling", "earlier"])
        await page.wait_for_timeout(1000)
        await titles_once(page, ["on the stream", "while polling", "earlier"])


async def test_without_a_proxy_the_stream_is_sse(server, alice):
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await live_on(page, "sse", "Live · SSE")
