"""Reactions in the browser, across two server processes: picked from a message's
"React" picker, shown live on another tab, toggled off again."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds import services
from feeds.models import Room
from tests.support.browser import chromium, open_room

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


async def test_a_reaction_shows_live_on_another_server_and_toggles_off(
    server, second_server, alice, bob
):
    general = await sync_to_async(Room.objects.create)(slug="general", title="General")
    await sync_to_async(services.message_post)(room=general, author=alice, content="cake?")
    async with chromium() as browser:
        mine = await open_room(browser, server.url, "bob", "general")
        theirs = await open_room(browser, second_server.url, "alice", "general")
        message = mine.locator("#chat-messages li.msg").first
        await message.hover()
        await message.get_by_role("button", name="React").click()
        await message.locator(".reaction-picker").get_by_role("button", name="🎉").click()
        chip = theirs.locator("#chat-messages li.msg .reaction")
        await expect(chip).to_have_text("🎉 1")
        await expect(chip).to_have_attribute("title", "bob")
        await mine.locator("#chat-messages li.msg .reaction").click()  # one's own: off
        await expect(chip).to_have_count(0)
