"""A private room run from its page: created from the room list, a member added by
username (their list shows it), then removed (their room tab is closed, their list
drops it)."""

from __future__ import annotations

import pytest
from playwright.async_api import expect

from tests.support.browser import chromium, open_room, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


async def test_an_owner_adds_and_removes_a_member_from_the_room_page(
    server, second_server, alice, bob
):
    async with chromium() as browser:
        owner = await signed_in_page(browser, server.url, "alice")
        await owner.goto(f"{server.url}/chat/")
        await owner.fill("#id_title", "Book club")
        await owner.check("#id_private")
        await owner.click("#room-form button[type=submit]")
        await owner.wait_for_url(f"{server.url}/chat/book-club/")

        rooms = await signed_in_page(browser, second_server.url, "bob")
        await rooms.goto(f"{second_server.url}/chat/")
        await expect(rooms.locator("#room-list")).not_to_contain_text("Book club")

        await owner.fill("#member-username", "bob")
        await owner.click("#member-add button[type=submit]")
        await expect(owner.locator('#chat-members li[data-username="bob"]')).to_be_visible()
        await expect(rooms.locator("#room-list")).to_contain_text("Book club")

        tab = await open_room(browser, second_server.url, "bob", "book-club")
        member = owner.locator('#chat-members li[data-username="bob"]')
        await member.get_by_role("button", name="Remove").click()
        await expect(owner.locator('#chat-members li[data-username="bob"]')).to_have_count(0)
        await expect(tab.locator("#chat-banner")).to_contain_text("no longer have access")
        await expect(rooms.locator("#room-list")).not_to_contain_text("Book club")

        await owner.fill("#member-username", "nobody")
        await owner.click("#member-add button[type=submit]")
        await expect(owner.locator("#member-error")).to_contain_text("no user named 'nobody'")
