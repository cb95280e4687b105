"""A chat room behind proxies that break WebSockets and SSE, in headless Chromium: the page
falls back to SSE or long polls, says which, and gets and sends every message once."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page, expect

from feeds.models import Message, Room
from tests.support.browser import chromium, log_in
from tests.support.chat_ws import frame, joined, send
from tests.support.proxy import Proxy

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

# Two refused sockets, a stream that never opens (4 s), then the first poll: generous.
FALLEN_BACK_MS = 30_000


def make_room(bob) -> Room:
    room = Room.objects.create(slug="lobby", title="Lobby")
    for i in range(3):
        Message.objects.create(room=room, author=bob, content=f"earlier {i}")
    return room


async def open_room(browser, base_url: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await log_in(page, base_url, "alice")
    await page.goto(f"{base_url}/chat/lobby/")
    return page


async def exactly_once(page: Page, texts: list[str]) -> None:
    """The page shows these messages, each once, in this order, and nothing pending."""
    await expect(page.locator("#chat-messages li.msg:not(.pending) .msg-body")).to_have_text(texts)
    await expect(page.locator("#chat-messages li.msg.pending")).to_have_count(0)


@pytest.mark.parametrize(
    ("proxy_options", "transport"),
    [
        ({"refuse_upgrade": True}, "SSE"),
        ({"refuse_upgrade": True, "buffer": True}, "polling"),
    ],
    ids=["no-websockets", "buffering-proxy"],
)
async def test_a_room_behind_a_proxy_falls_back_and_loses_nothing(
    server, alice, bob, proxy_options, transport
):
    await sync_to_async(make_room)(bob)
    earlier = [f"earlier {i}" for i in range(3)]
    async with Proxy(server.port, **proxy_options) as proxy, chromium() as browser:
        page = await open_room(browser, proxy.url)
        await expect(page.locator("#chat-status")).to_have_text("Live", timeout=FALLEN_BACK_MS)
        await expect(page.locator("#chat-transport")).to_have_text(transport)
        assert proxy.refused_upgrades >= 2
        await exactly_once(page, earlier)

        ws, _ = await joined(server, "lobby", bob)  # bob has no proxy in the way
        try:
            await send(ws, type="message", content="from bob", client_msg_id="b1")
            await exactly_once(page, [*earlier, "from bob"])

            await page.locator("#chat-input").fill("from alice")
            await page.locator("#chat-input").press("Enter")
            while (await frame(ws, "broadcast"))["data"]["content"] != "from alice":
                pass
            await exactly_once(page, [*earlier, "from bob", "from alice"])
            await page.wait_for_timeout(1500)  # the stream's copy of it must not show twice
            await exactly_once(page, [*earlier, "from bob", "from alice"])
        finally:
            await ws.close()
        await expect(page.locator("#chat-transport")).to_have_text(transport)
    assert await sync_to_async(Message.objects.filter(content="from alice").count)() == 1


async def test_without_a_proxy_the_room_is_live_over_websocket(server, alice, bob):
    await sync_to_async(make_room)(bob)
    async with chromium() as browser:
        page = await open_room(browser, server.url)
        await expect(page.locator("#chat-status")).to_have_text("Live")
        await expect(page.locator("#chat-transport")).to_have_text("WebSocket")
        await exactly_once(page, [f"earlier {i}" for i in range(3)])


@pytest.mark.parametrize(
    ("proxy_options", "before", "after"),
    [
        ({"refuse_upgrade": True}, "SSE", "WebSocket"),
        ({"refuse_upgrade": True, "buffer": True}, "polling", "SSE"),
    ],
    ids=["sse-to-websocket", "polling-to-sse"],
)
async def test_a_fallen_back_room_takes_the_better_transport_once_it_works(
    server, alice, bob, proxy_options, before, after
):
    await sync_to_async(make_room)(bob)
    earlier = [f"earlier {i}" for i in range(3)]
    async with Proxy(server.port, **proxy_options) as proxy, chromium() as browser:
        context = await browser.new_context()
        await context.clock.install()  # the page's timers, fast-forwarded below
        page = await context.new_page()
        await log_in(page, proxy.url, "alice")
        await page.goto(f"{proxy.url}/chat/lobby/")
        await expect(page.locator("#chat-transport")).to_have_text(before, timeout=FALLEN_BACK_MS)
        proxy.buffer = False
        proxy.refuse_upgrade = after != "WebSocket"

        ws, _ = await joined(server, "lobby", bob)
        try:
            # Most of the minute before the retry; a message meanwhile keeps a stream from
            # looking silent when the clock jumps.
            await page.clock.fast_forward(40_000)
            await send(ws, type="message", content="before the switch")
            await exactly_once(page, [*earlier, "before the switch"])
            await page.clock.fast_forward(21_000)
            await expect(page.locator("#chat-transport")).to_have_text(after, timeout=15_000)
            await expect(page.locator("#chat-status")).to_have_text("Live")
            await send(ws, type="message", content="after the switch")
            await exactly_once(page, [*earlier, "before the switch", "after the switch"])
            await page.locator("#chat-input").fill("from alice")
            await page.locator("#chat-input").press("Enter")
            expected = [*earlier, "before the switch", "after the switch", "from alice"]
            await exactly_once(page, expected)
            await page.wait_for_timeout(1500)
            await exactly_once(page, expected)
        finally:
            await ws.close()
