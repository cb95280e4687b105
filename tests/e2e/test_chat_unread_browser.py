"""Unread badges in the browser: a message said through one server process shows on the
reader's room list served by the other, a mention stands out, opening the room starts at
the first unread message, and reading it clears the badge."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds import services
from feeds.models import Room
from tests.support.browser import chromium, open_room, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

# The room list re-reads every 5 s; CI machines are slow.
LIVE_MS = 15_000


async def test_unread_badges_appear_live_and_clear_once_read(server, second_server, alice, bob):
    general = await sync_to_async(Room.objects.create)(slug="general", title="General")
    for i in range(30):
        await sync_to_async(services.message_post)(room=general, author=alice, content=f"old {i}")
    async with chromium() as browser:
        rooms = await signed_in_page(browser, server.url, "bob")
        await rooms.goto(f"{server.url}/chat/general/")  # a first visit: all read
        await rooms.goto(f"{server.url}/chat/")
        await expect(rooms.locator(".unread-badge")).to_have_count(0)

        talker = await open_room(browser, second_server.url, "alice", "general")
        for text in ("first new", "@bob look", *(f"more {i}" for i in range(20))):
            await talker.locator("#chat-input").fill(text)
            await talker.locator("#chat-input").press("Enter")
        badge = rooms.locator('.room-row[data-slug="general"] .unread-badge')
        await expect(badge).to_have_text("@1 · 22", timeout=LIVE_MS)
        await expect(badge).to_have_class("unread-badge mention")

        tab = await open_room(browser, second_server.url, "bob", "general")
        divider = tab.locator("#chat-unread-divider")
        await expect(divider).to_be_visible()
        first_new = tab.locator("#chat-unread-divider + li.msg .msg-body")
        await expect(first_new).to_have_text("first new")
        await expect(first_new).to_be_in_viewport()
        await tab.locator("#chat-log").evaluate("log => { log.scrollTop = log.scrollHeight; }")
        await expect(badge).to_have_count(0, timeout=LIVE_MS)


async def test_a_link_to_an_old_message_pages_back_to_it(server, alice, bob):
    general = await sync_to_async(Room.objects.create)(slug="general", title="General")
    post = sync_to_async(services.message_post)
    for i in range(5):
        await post(room=general, author=alice, content=f"early {i}")
    mention, _ = await post(room=general, author=alice, content="@bob see this")
    for i in range(120):  # more than the welcome's 50 and a history page's 100 after it
        await post(room=general, author=alice, content=f"later {i}")
    async with chromium() as browser:
        page = await signed_in_page(browser, server.url, "bob")
        await page.goto(f"{server.url}/chat/general/#m{mention['id']}")
        target = page.locator(f"#m{mention['id']}")
        await expect(target).to_be_in_viewport(timeout=LIVE_MS)
        await expect(target.locator(".msg-body")).to_have_text("@bob see this")
