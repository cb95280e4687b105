"""Editing and deleting in the room page: the author's buttons, and the change live in a
tab on another server process."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds.models import Room
from tests.support.browser import chromium, open_room

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


async def test_an_author_edits_then_deletes_and_the_other_tab_follows(
    server, second_server, alice, bob
):
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    async with chromium() as browser:
        a = await open_room(browser, server.url, "alice", "lobby")
        b = await open_room(browser, second_server.url, "bob", "lobby")
        await a.locator("#chat-input").fill("helo bob")
        await a.locator("#chat-input").press("Enter")
        mine = a.locator("#chat-messages li.msg").last
        theirs = b.locator("#chat-messages li.msg").last
        await expect(theirs.locator(".msg-body")).to_have_text("helo bob")
        await theirs.hover()
        # Not bob's message: he may react to it and report it, not edit or delete it.
        await expect(theirs.locator(".msg-actions button")).to_have_text(["React", "Report"])

        a.once("dialog", lambda dialog: dialog.accept("hello bob"))
        await mine.hover()
        await mine.get_by_role("button", name="Edit").click()
        await expect(theirs.locator(".msg-body")).to_have_text("hello bob")
        await expect(theirs.locator(".msg-edited")).to_have_text("(edited)")
        await expect(mine.locator(".msg-edited")).to_have_text("(edited)")

        a.once("dialog", lambda dialog: dialog.accept())
        await mine.hover()
        await mine.get_by_role("button", name="Delete").click()
        await expect(theirs.locator(".msg-body")).to_have_text("message deleted")
        await expect(theirs).to_have_class(re.compile(r"\bdeleted\b"))
        await expect(mine.locator(".msg-actions")).to_have_count(0)

        # A page opened afterwards shows the tombstone from its history.
        c = await open_room(browser, second_server.url, "bob", "lobby")
        await expect(c.locator("#chat-messages li.msg .msg-body")).to_have_text(["message deleted"])
