"""The bell's seen/unseen badge, archive and collapse in a real headless Chromium."""

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from playwright.async_api import Route, expect

from notifications.models import Notification
from notifications.services import notification_create
from tests.support.browser import chromium, log_in, signed_in_page

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

create = sync_to_async(notification_create)


async def test_opening_the_bell_clears_the_badge_in_every_tab_and_new_ones_count_again(
    server, alice
):
    await create(recipient=alice, title="One")
    await create(recipient=alice, title="Two")
    async with chromium() as browser:
        context = await browser.new_context()
        tab1 = await context.new_page()
        await log_in(tab1, server.url, "alice")
        tab2 = await context.new_page()  # follows tab1's stream (tabs.js)
        await tab2.goto(f"{server.url}/notifications/")
        for tab in (tab1, tab2):
            await expect(tab.locator("#conn-state")).to_have_attribute("data-state", "open")
            await expect(tab.locator("#bell-badge")).to_have_text("2")

        await tab1.click("#bell-button")
        await expect(tab1.locator("#bell-list li.item")).to_have_count(2)
        await expect(tab1.locator("#bell-badge")).to_be_hidden()
        await expect(tab2.locator("#bell-badge")).to_be_hidden(timeout=5000)
        # seen is not read: both rows are still unread
        await expect(tab2.locator("#inbox-list li.item.unread")).to_have_count(2)

        await create(recipient=alice, title="Three")  # into the open bell: seen at once
        await expect(tab1.locator("#bell-list li.item")).to_have_count(3, timeout=5000)
        await expect(tab2.locator("#inbox-list li.item")).to_have_count(3, timeout=5000)
        await expect(tab2.locator("#bell-badge")).to_be_hidden()

        await tab1.keyboard.press("Escape")
        await create(recipient=alice, title="Four")
        await expect(tab1.locator("#bell-badge")).to_have_text("1", timeout=5000)
        await expect(tab2.locator("#bell-badge")).to_have_text("1", timeout=5000)


async def test_counts_answered_before_a_notification_on_the_page_do_not_clear_its_badge(
    server, alice
):
    one = await create(recipient=alice, title="One")
    async with chromium() as browser:
        page = await signed_in_page(browser, server.url, "alice")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        await expect(page.locator("#bell-badge")).to_have_text("1")
        answered = asyncio.Event()

        async def answer_after_the_next_notification(route: Route) -> None:
            # Counted now (0 unread), then held until a newer notification's event is on
            # the page, as a slow request beside a fast stream can deliver it.
            answer = await route.fetch()
            two = await create(recipient=alice, title="Two")
            await expect(
                page.locator(f'#inbox-list li.item.unread[data-id="{two.pk}"]')
            ).to_have_count(1, timeout=5000)
            await route.fulfill(response=answer)
            answered.set()

        await page.route("**/api/notifications/read-all/", answer_after_the_next_notification)
        await page.click("#inbox-read-all")
        await asyncio.wait_for(answered.wait(), 10)
        await expect(page.locator(f'#inbox-list li.item.unread[data-id="{one.pk}"]')).to_have_count(
            0, timeout=5000
        )
        # the answer said 0, but "Two" came after it was counted: the page asked again
        await expect(page.locator("#bell-badge")).to_have_text("1", timeout=5000)
        await expect(page.locator("#inbox-list li.item.unread")).to_have_count(1)  # "Two"


async def test_archiving_in_one_browser_removes_the_row_in_another_on_another_process(
    server, second_server, alice
):
    n = await create(recipient=alice, title="Archive me")
    await create(recipient=alice, title="Keep me")
    async with chromium() as browser:
        here = await (await browser.new_context()).new_page()
        await log_in(here, server.url, "alice")
        there = await (await browser.new_context()).new_page()  # its own stream
        await log_in(there, second_server.url, "alice")
        row = f'#inbox-list li[data-id="{n.pk}"]'
        await expect(there.locator("#conn-state")).to_have_attribute("data-state", "open")
        await expect(there.locator(row)).to_have_count(1)

        await here.locator(f"{row} .row-action.archive").click()
        await expect(here.locator(row)).to_have_count(0)
        await expect(there.locator(row)).to_have_count(0, timeout=5000)
        await expect(there.locator("#bell-badge")).to_have_text("1", timeout=5000)

        await there.check("#inbox-archived")
        await expect(there.locator(row)).to_have_count(1)
        await there.locator(f"{row} .row-action.unarchive").click()
        await expect(there.locator(row)).to_have_count(0)
        await expect(here.locator(row)).to_have_count(1, timeout=5000)  # back in the inbox
    archived = await sync_to_async(Notification.objects.filter(archived_at__isnull=False).count)()
    assert archived == 0


async def test_a_collapsed_notification_replaces_its_row_and_counts_once(server, alice, bob):
    post = await Group.objects.acreate(name="post")
    first = await create(recipient=alice, title="bob replied", actor=bob, target=post)
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        await expect(page.locator("#inbox-list li.item")).to_have_count(1)

        await create(recipient=alice, title="alice replied", actor=alice, target=post)
        rows = page.locator("#inbox-list li.item")
        await expect(rows.first.locator(".item-title")).to_have_text(
            "alice and 1 other replied", timeout=5000
        )
        await expect(rows).to_have_count(1)
        await expect(rows.first.locator(".item-count")).to_have_text("\N{MULTIPLICATION SIGN}2")
        await expect(page.locator(f'#inbox-list li[data-id="{first.pk}"]')).to_have_count(0)
        await expect(page.locator("#bell-badge")).to_have_text("1")
