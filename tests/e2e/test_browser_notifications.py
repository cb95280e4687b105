"""The bell, dropdown, toast and inbox in a real headless Chromium."""

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from notifications.services import notification_create
from tests.browser import chromium, log_in

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

create = sync_to_async(notification_create)


async def test_a_new_notification_updates_badge_dropdown_and_toast_without_reload(server, alice):
    await create(recipient=alice, title="Earlier one")
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        badge = page.locator("#bell-badge")
        await expect(badge).to_have_text("1")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")

        xss = "<img src=x onerror=alert(1)>"
        await create(recipient=alice, title=xss, body="Deploy <b>done</b>", level="success")

        await expect(badge).to_have_text("2", timeout=5000)
        toast = page.locator(".toast").last
        await expect(toast.locator(".toast-title")).to_have_text(xss)
        # the inbox list on this page gets the row live, as text
        await expect(page.locator("#inbox-list li.item").first.locator(".item-title")).to_have_text(
            xss
        )
        assert await page.locator("#inbox-list img").count() == 0

        await page.click("#bell-button")
        dropdown = page.locator("#bell-list")
        await expect(dropdown.locator("li.item").first).to_contain_text(xss)
        await expect(dropdown.locator("li.item")).to_have_count(2)


async def test_marking_read_in_one_tab_updates_the_badge_in_another(server, alice):
    first = await create(recipient=alice, title="First")
    await create(recipient=alice, title="Second")
    async with chromium() as browser:
        context = await browser.new_context()
        tab1 = await context.new_page()
        await log_in(tab1, server.url, "alice")
        tab2 = await context.new_page()
        await tab2.goto(f"{server.url}/notifications/")
        await expect(tab2.locator("#conn-state")).to_have_attribute("data-state", "open")
        await expect(tab2.locator("#bell-badge")).to_have_text("2")

        await tab1.locator(f'#inbox-list li[data-id="{first.pk}"] .mark-read').click()
        await expect(tab1.locator("#bell-badge")).to_have_text("1")
        await expect(tab2.locator("#bell-badge")).to_have_text("1", timeout=5000)
        await expect(tab2.locator(f'#inbox-list li[data-id="{first.pk}"]')).not_to_have_class(
            "item level-info unread"
        )

        await tab2.click("#inbox-read-all")
        await expect(tab1.locator("#bell-badge")).to_be_hidden(timeout=5000)
        await expect(tab2.locator("#bell-badge")).to_be_hidden()


async def test_logged_out_visitors_get_the_login_page(server):
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await page.goto(f"{server.url}/notifications/")
        await expect(page.locator("h1")).to_have_text("Log in")
        assert "/login/" in page.url
