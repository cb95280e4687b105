"""The Python client doubles (tests/support/chat_tab.py, sse_tab.py) against the real clients.

Load and fault tests use the doubles because a thousand Chromium tabs would not fit on the
machine. They are only worth what they copy: here the real `static/` client in Chromium and
its double go through the same outage side by side — their server stopped, messages and
notifications stored meanwhile, the server back on the same port — and must end up with
the same thing: every stored event exactly once, in order, and what was typed offline
stored exactly once.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds.models import Message, Room
from notifications.models import Notification
from notifications.services import notification_create
from tests.support.browser import chromium, log_in
from tests.support.chat_tab import ChatTab
from tests.support.factories import cookie_for
from tests.support.servers import Server
from tests.support.sse_tab import SSETab
from tests.support.waiting import until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True),
]

RUN_FOR = 120.0  # s: the doubles' loops end by then whatever happens
BACK_WITHIN = 30_000  # ms: the page shows it is live again (its backoff is at most 15 s)

# Every `notification` event the page's EventSource receives, before the page de-duplicates.
RECORD_EVENTS = """
window.__notifications = [];
window.EventSource = class extends window.EventSource {
  constructor(...args) {
    super(...args);
    this.addEventListener("notification", (e) => {
      window.__notifications.push(JSON.parse(e.data).id);
    });
  }
};
"""


async def test_chat_js_and_its_double_come_back_from_an_outage_alike(
    redis_server, alice, bob, tmp_path
):
    room = await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    await sync_to_async(Message.objects.create)(room=room, author=bob, content="before")
    first = await asyncio.to_thread(
        Server(redis_url=redis_server.url, log_path=tmp_path / "first.log").start
    )
    double = ChatTab(
        port=first.port,
        slug="lobby",
        session=await cookie_for(alice),
        username="alice",
        rng=random.Random(7),
    )
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(double.run(until=loop.time() + RUN_FOR))
    again = None
    try:
        async with chromium() as browser:
            page = await (await browser.new_context()).new_page()
            await log_in(page, first.url, "alice")
            await page.goto(f"{first.url}/chat/lobby/")
            await expect(page.locator("#chat-status")).to_have_text("Live")
            await asyncio.wait_for(double.welcomed.wait(), 10)

            await asyncio.to_thread(first.stop)
            await expect(page.locator("#chat-status")).not_to_have_text("Live")
            await page.fill("#chat-input", "typed in the browser")
            await page.press("#chat-input", "Enter")
            double.send_message("typed in the double")
            # more than a welcome's 50: both must page through the rest after what they saw
            await sync_to_async(Message.objects.bulk_create)(
                [Message(room=room, author=bob, content=f"missed {i}") for i in range(60)]
            )
            again = Server(redis_url=redis_server.url, log_path=tmp_path / "again.log")
            again.port = first.port
            await asyncio.to_thread(again.start)

            await expect(page.locator("li.msg.pending")).to_have_count(0, timeout=BACK_WITHIN)
            await until(
                lambda: not double.pending, BACK_WITHIN / 1000, "the double's message confirmed"
            )
            stored = await sync_to_async(list)(
                Message.objects.filter(room=room).order_by("id").values_list("id", "content")
            )
            await expect(page.locator(".msg-body")).to_have_text([c for _, c in stored])
            await until(
                lambda: double.shown == {i for i, _ in stored}, BACK_WITHIN / 1000, "the backfill"
            )
            shown_in_page = await page.locator("li.msg[data-id]").evaluate_all(
                "rows => rows.map((row) => Number(row.dataset.id))"
            )
    finally:
        double.close()
        await asyncio.gather(running, return_exceptions=True)
        if again is not None:
            await asyncio.to_thread(again.stop)
    assert shown_in_page == [i for i, _ in stored]
    assert sorted(double.shown) == shown_in_page
    for typed in ("typed in the browser", "typed in the double"):
        assert [c for _, c in stored].count(typed) == 1, typed
    assert double.refused == {}


async def test_eventsource_and_its_double_come_back_from_an_outage_alike(
    redis_server, alice, tmp_path
):
    first = await asyncio.to_thread(
        Server(redis_url=redis_server.url, log_path=tmp_path / "first.log").start
    )
    before = await sync_to_async(notification_create)(recipient=alice, title="before")
    double = SSETab(port=first.port, session=await cookie_for(alice))
    loop = asyncio.get_running_loop()
    running = asyncio.create_task(double.run(until=loop.time() + RUN_FOR))
    again = None
    try:
        async with chromium() as browser:
            context = await browser.new_context()
            await context.add_init_script(RECORD_EVENTS)
            page = await context.new_page()
            await log_in(page, first.url, "alice")
            await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
            await asyncio.wait_for(double.opened.wait(), 10)
            live = await sync_to_async(notification_create)(recipient=alice, title="live")
            await until(lambda: len(double.notifications()) == 1, 10, "the live notification")

            await asyncio.to_thread(first.stop)
            missed = [
                await sync_to_async(notification_create)(recipient=alice, title=f"missed {i}")
                for i in range(5)
            ]
            again = Server(redis_url=redis_server.url, log_path=tmp_path / "again.log")
            again.port = first.port
            await asyncio.to_thread(again.start)
            after = await _created_once_both_are_back(page, double, alice)

            want = [live.pk, *(n.pk for n in missed), after.pk]
            await until(
                lambda: [n["id"] for n in double.notifications()] == want,
                BACK_WITHIN / 1000,
                "the double's notifications",
            )
            await page.wait_for_function(
                f"window.__notifications.length >= {len(want)}", timeout=BACK_WITHIN
            )
            await asyncio.sleep(0.5)  # anything doubled arrives by now
            in_page = await page.evaluate("window.__notifications")
    finally:
        double.close()
        await asyncio.gather(running, return_exceptions=True)
        if again is not None:
            await asyncio.to_thread(again.stop)
    assert before.pk not in in_page  # read on the page load, not replayed
    assert in_page == want
    assert [n["id"] for n in double.notifications()] == want
    # both waited the server's `retry:` before coming back (1-10 s, notifications.views)
    assert double.retries_seen and all(1000 <= r <= 10_000 for r in double.retries_seen)
    assert await sync_to_async(Notification.objects.filter(recipient=alice).count)() == 8


async def _created_once_both_are_back(page, double: SSETab, user) -> Notification:
    """A notification created once the page and the double have both reconnected."""
    await expect(page.locator("#conn-state")).to_have_attribute(
        "data-state", "open", timeout=BACK_WITHIN
    )
    await until(double.opened.is_set, BACK_WITHIN / 1000, "the double back")
    return await sync_to_async(notification_create)(recipient=user, title="after")
