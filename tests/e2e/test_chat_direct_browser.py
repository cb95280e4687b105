"""Direct messages in the browser: opened from the chat page, found again by a link,
private to the two, with the other person's name and presence."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.support.browser import chromium, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


async def test_alice_messages_bob_directly_and_bob_finds_the_same_room(
    server, second_server, alice, bob, charlie
):
    async with chromium() as browser:
        a = await signed_in_page(browser, server.url, "alice")
        await a.goto(f"{server.url}/chat/")
        await a.fill("#direct-form input[name=username]", "bob")
        await a.click("#direct-form button[type=submit]")
        await expect(a.locator("#chat-status")).to_have_text("Live")
        await expect(a.locator(".chat-title h1")).to_have_text("bob")
        await expect(a.locator("#dm-presence")).to_have_text("offline")
        room_path = a.url.removeprefix(server.url)

        b = await signed_in_page(browser, second_server.url, "bob")
        await b.goto(f"{second_server.url}/chat/dm/alice/")
        assert b.url == f"{second_server.url}{room_path}"
        await expect(b.locator(".chat-title h1")).to_have_text("alice")
        await expect(a.locator("#dm-presence")).to_have_text("online")
        await expect(b.locator("#dm-presence")).to_have_text("online")

        await a.locator("#chat-input").fill("just us")
        await a.locator("#chat-input").press("Enter")
        await expect(b.locator("#chat-messages .msg-body")).to_have_text(["just us"])

        c = await signed_in_page(browser, server.url, "charlie")
        response = await c.goto(f"{server.url}{room_path}")
        assert response.status == 404
