"""Two people chatting in headless Chromium, logged in through the real login form."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds.models import Message, Room
from tests.support.browser import chromium, log_in, open_room
from tests.support.servers import Server

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


async def test_alice_and_bob_see_each_others_messages_and_typing(server, alice, bob):
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    async with chromium() as browser:
        a = await open_room(browser, server.url, "alice", "lobby")
        b = await open_room(browser, server.url, "bob", "lobby")
        await expect(a.locator("#chat-online")).to_contain_text("bob")
        await expect(a.locator("#chat-online-count")).to_have_text("2")

        await a.locator("#chat-input").press_sequentially("Hello Bob")
        await expect(b.locator("#chat-typing")).to_have_text("alice is typing…")
        await expect(a.locator("#chat-typing")).to_have_text("")  # not for one's own typing
        await a.locator("#chat-input").press("Enter")
        bob_sees = b.locator("#chat-messages li.msg").last
        await expect(bob_sees.locator(".msg-author")).to_have_text("alice")
        await expect(bob_sees.locator(".msg-body")).to_have_text("Hello Bob")
        await expect(b.locator("#chat-typing")).to_have_text("")  # the message ends it
        await expect(a.locator("#chat-messages li.msg.pending")).to_have_count(0)

        xss = "<img src=x onerror=alert(1)> thanks @alice"
        await b.locator("#chat-input").press_sequentially(xss)
        await expect(a.locator("#chat-typing")).to_have_text("bob is typing…")
        await b.locator("#chat-send").click()
        alice_sees = a.locator("#chat-messages li.msg").last
        await expect(alice_sees.locator(".msg-body")).to_have_text(xss)
        await expect(alice_sees.locator(".mention.me")).to_have_text("@alice")
        assert await a.locator("#chat-messages img").count() == 0
        await expect(a.locator("#chat-messages li.msg")).to_have_count(2)
        await expect(b.locator("#chat-messages li.msg")).to_have_count(2)

        # bob logs out in another tab: his chat tab is told, and stops
        other_tab = await b.context.new_page()
        await other_tab.goto(f"{server.url}/chat/")
        await other_tab.click("#logout-button")
        await expect(b.locator("#chat-banner")).to_contain_text("You were signed out.")
        await expect(b.locator("#chat-input")).to_be_disabled()
        await expect(a.locator("#chat-online")).not_to_contain_text("bob")


async def test_a_tab_that_lost_its_server_backfills_and_sends_what_was_typed(
    redis_server, alice, bob, tmp_path
):
    room = await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    await sync_to_async(Message.objects.create)(room=room, author=bob, content="before")
    first = await asyncio.to_thread(_server(redis_server, tmp_path).start)
    try:
        async with chromium() as browser:
            page = await open_room(browser, first.url, "alice", "lobby")
            await expect(page.locator(".msg-body")).to_have_text(["before"])
            await asyncio.to_thread(first.stop)
            await expect(page.locator("#chat-status")).not_to_have_text("Live")

            await page.fill("#chat-input", "typed while offline")
            await page.press("#chat-input", "Enter")
            await expect(page.locator("li.msg.pending .msg-state")).to_have_text("Sending…")
            # more than the welcome's 50: the tab must ask for the rest after what it saw
            missed = [f"missed {i}" for i in range(60)]
            await sync_to_async(Message.objects.bulk_create)(
                [Message(room=room, author=bob, content=text) for text in missed]
            )
            again = _server(redis_server, tmp_path)
            again.port = first.port  # the same address the tab keeps retrying
            await asyncio.to_thread(again.start)
            try:
                await expect(page.locator("#chat-status")).to_have_text("Live", timeout=20_000)
                # A server that was down is no proxy in the way: the socket comes back.
                await expect(page.locator("#chat-transport")).to_have_text("WebSocket")
                await expect(page.locator(".msg-body")).to_have_text(
                    ["before", *missed, "typed while offline"]
                )
                await expect(page.locator("li.msg.pending")).to_have_count(0)
            finally:
                await asyncio.to_thread(again.stop)
    finally:
        await asyncio.to_thread(first.stop)
    sent = await sync_to_async(Message.objects.filter(content="typed while offline").count)()
    assert sent == 1


def _server(redis_server, tmp_path) -> Server:
    return Server(redis_url=redis_server.url, log_path=tmp_path / "server.log")


async def test_the_room_list_shows_live_counts_and_creates_rooms(server, alice):
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await page.goto(f"{server.url}/chat/")
        row = page.locator('.room-row[data-slug="lobby"]')
        await expect(row.locator(".online-count")).to_have_text("0 online")
        other = await open_room(browser, server.url, "alice", "lobby")
        await expect(row.locator(".online-count")).to_have_text("1 online", timeout=8000)
        await other.close()

        await page.fill("#id_title", "Design <review>")
        await page.click(".room-form button[type=submit]")
        await page.wait_for_url(f"{server.url}/chat/design-review/")
        await expect(page.locator(".chat-title h1")).to_have_text("#Design <review>")
        await expect(page.locator("#chat-status")).to_have_text("Live")
        await expect(page.locator("#chat-empty")).to_be_visible()


async def test_someone_typing_is_shown_then_expires_without_a_message(server, alice, bob):
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    async with chromium() as browser:
        a = await open_room(browser, server.url, "alice", "lobby")
        b = await open_room(browser, server.url, "bob", "lobby")
        await a.locator("#chat-input").press_sequentially("Hel")
        await expect(b.locator("#chat-typing")).to_have_text("alice is typing…")
        # alice stops typing and sends nothing: the indicator goes after about 4 s
        await expect(b.locator("#chat-typing")).to_have_text("", timeout=8000)


async def test_a_reader_scrolled_up_is_not_pulled_down_and_gets_a_button(server, alice, bob):
    room = await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    await sync_to_async(Message.objects.bulk_create)(
        [Message(room=room, author=bob, content=f"old {i}") for i in range(40)]
    )
    async with chromium() as browser:
        a = await open_room(browser, server.url, "alice", "lobby")
        b = await open_room(browser, server.url, "bob", "lobby")
        await expect(b.locator("#chat-jump")).to_be_hidden()
        await b.locator("#chat-log").evaluate("log => { log.scrollTop = 0; }")
        await a.locator("#chat-input").fill("something new")
        await a.locator("#chat-input").press("Enter")
        await expect(b.locator(".msg-body").last).to_have_text("something new")
        await expect(b.locator("#chat-jump")).to_be_visible()
        assert await b.locator("#chat-log").evaluate("log => log.scrollTop") == 0
        await b.locator("#chat-jump").click()
        await expect(b.locator("#chat-jump")).to_be_hidden()
        at_bottom = "log => log.scrollHeight - log.scrollTop - log.clientHeight < 80"
        assert await b.locator("#chat-log").evaluate(at_bottom)


# Keeps the page's sockets reachable, to send what the page's own UI never would.
CAPTURE_SOCKETS = """
window.__sockets = [];
window.WebSocket = class extends window.WebSocket {
  constructor(...args) { super(...args); window.__sockets.push(this); }
};
"""


async def open_live_room(browser, server, slug: str):
    """alice's page of the room, live, its sockets in `window.__sockets`."""
    context = await browser.new_context()
    await context.add_init_script(CAPTURE_SOCKETS)
    page = await context.new_page()
    await log_in(page, server.url, "alice")
    await page.goto(f"{server.url}/chat/{slug}/")
    await expect(page.locator("#chat-status")).to_have_text("Live")
    return page


async def test_an_error_about_no_message_is_shown_to_the_user(server, alice):
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    async with chromium() as browser:
        page = await open_live_room(browser, server, "lobby")
        await page.evaluate(
            "window.__sockets.at(-1).send(JSON.stringify({type: 'history', limit: 0}))"
        )
        await expect(page.locator("#chat-notice")).to_be_visible()
        await expect(page.locator("#chat-notice")).to_contain_text("limit must be an integer")


async def test_a_rate_limited_message_is_sent_again_by_itself(server, alice):
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    async with chromium() as browser:
        page = await open_live_room(browser, server, "lobby")
        # Spend the frame budget (30) so that the next message is refused, not the socket.
        await page.evaluate(
            "const ws = window.__sockets.at(-1);"
            "for (let i = 0; i < 36; i++) ws.send(JSON.stringify({type: 'join'}));"
        )
        await page.locator("#chat-input").fill("after the burst")
        await page.locator("#chat-input").press("Enter")
        await expect(page.locator("li.msg:not(.pending) .msg-body")).to_have_text(
            ["after the burst"], timeout=10_000
        )
        await expect(page.locator("li.msg.pending")).to_have_count(0)
        await expect(page.locator("#chat-status")).to_have_text("Live")
    assert await sync_to_async(Message.objects.filter(content="after the burst").count)() == 1


async def test_two_tabs_keep_each_others_unsent_messages(redis_server, alice, tmp_path):
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    srv = await asyncio.to_thread(_server(redis_server, tmp_path).start)
    try:
        async with chromium() as browser:
            first = await open_room(browser, srv.url, "alice", "lobby")
            second = await first.context.new_page()  # one profile: one localStorage
            await second.goto(f"{srv.url}/chat/lobby/")
            await expect(second.locator("#chat-status")).to_have_text("Live")
            await asyncio.to_thread(srv.stop)
            for page, text in ((first, "from the first tab"), (second, "from the second")):
                await expect(page.locator("#chat-status")).not_to_have_text("Live")
                await page.fill("#chat-input", text)
                await page.press("#chat-input", "Enter")
                await expect(page.locator("li.msg.pending")).to_have_count(1)
            await first.close()  # its unsent message now lives only in storage
            stored = await second.evaluate(
                "JSON.parse(localStorage.getItem('pulse-chat-pending:alice:lobby'))"
            )
            assert sorted(entry["content"] for _, entry in stored) == [
                "from the first tab",
                "from the second",
            ]
    finally:
        await asyncio.to_thread(srv.stop)
