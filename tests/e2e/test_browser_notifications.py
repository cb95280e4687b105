"""The bell, dropdown, toast and inbox in a real headless Chromium."""

from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from playwright.async_api import expect

from notifications.models import Notification
from notifications.services import (
    announcement_create,
    announcement_expire,
    announcement_publish,
    notification_create,
)
from tests.support.browser import chromium, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

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


async def test_opening_an_item_marks_it_read_before_following_its_link(server, alice):
    plain = await create(recipient=alice, title="No link here")
    linked = await create(recipient=alice, title="Open the chat", url="/chat/")
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        badge = page.locator("#bell-badge")
        await expect(badge).to_have_text("2")

        await page.locator(f'#inbox-list li[data-id="{plain.pk}"] .item-title').click()
        await expect(badge).to_have_text("1")
        await expect(page.locator(f'#inbox-list li[data-id="{plain.pk}"]')).not_to_have_class(
            "item level-info unread"
        )

        await page.click("#bell-button")
        await page.locator(f'#bell-list li[data-id="{linked.pk}"] a').click()
        await page.wait_for_url(f"{server.url}/chat/")
        # the page it led to was rendered after the read was stored
        await expect(page.locator("#bell-badge")).to_be_hidden()
    assert await sync_to_async(Notification.objects.filter(read_at__isnull=True).count)() == 0


async def test_clicking_a_notifications_toast_reads_it_and_follows_its_link(server, alice):
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        await create(recipient=alice, title="Toast only", url="/feed/")
        await expect(page.locator("#bell-badge")).to_have_text("1", timeout=5000)

        await page.locator(".toast", has_text="Toast only").click()
        await page.wait_for_url(f"{server.url}/feed/")
        await expect(page.locator("#bell-badge")).to_be_hidden()
    assert await sync_to_async(Notification.objects.filter(read_at__isnull=True).count)() == 0


async def test_a_script_title_and_url_from_the_server_neither_run_nor_link(server, alice):
    xss = "<img src=x onerror=\"window.__xss = 1; alert('title')\">"
    n = await create(recipient=alice, title=xss, url="/ok/")
    await sync_to_async(Notification.objects.filter(pk=n.pk).update)(
        url="javascript:window.__xss = 2; alert('url')"
    )
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda dialog: dialogs.append(dialog.message))
        await log_in(page, server.url, "alice")
        row = page.locator(f'#inbox-list li[data-id="{n.pk}"]')
        await expect(row.locator(".item-title")).to_have_text(xss)
        assert 'href="javascript:' not in (await page.content()).lower()

        await page.click("#bell-button")
        await expect(page.locator(f'#bell-list li[data-id="{n.pk}"]')).to_contain_text(xss)
        await page.locator(f'#bell-list li[data-id="{n.pk}"] .item-title').click()
        await row.locator(".item-title").click()
        await expect(page.locator("#bell-badge")).to_be_hidden()
        assert await page.locator('a[href^="javascript:" i]').count() == 0
        assert await page.locator("#inbox-list img, #bell-list img").count() == 0
        assert await page.evaluate("window.__xss") is None
        assert dialogs == []
        assert page.url == f"{server.url}/notifications/"


async def test_the_dropdown_lists_an_unread_announcement_the_badge_counts(server, alice):
    announcement = await sync_to_async(announcement_create)(title="Office closed Friday")
    await sync_to_async(announcement_publish)(announcement=announcement)
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await expect(page.locator("#bell-badge")).to_have_text("1")

        await page.click("#bell-button")
        row = page.locator(f'#bell-list li[data-announcement-id="{announcement.pk}"]')
        await expect(row).to_contain_text("Office closed Friday")
        await expect(page.locator("#bell-list")).not_to_contain_text("No notifications yet")

        await row.locator(".item-title").click()
        await expect(page.locator("#bell-badge")).to_be_hidden()
        await expect(page.locator("#announcement-banner")).to_be_hidden()


async def inbox_showing(browser, server, announcement):
    """alice's inbox showing the announcement (row, banner, badge): the page and its row."""
    page = await (await browser.new_context()).new_page()
    await log_in(page, server.url, "alice")
    row = page.locator(f'#inbox-announcements li[data-announcement-id="{announcement.pk}"]')
    await expect(row).to_be_visible()
    await expect(page.locator("#announcement-banner")).to_contain_text(announcement.title)
    await expect(page.locator("#bell-badge")).to_have_text("1")
    return page, row


# Long enough for Chromium to start and the inbox to load on a busy machine (4 s was not:
# the page came up after the announcement had expired, with nothing to watch leave).
EXPIRES_IN = 15


async def test_an_expired_announcement_leaves_the_banner_inbox_and_count(server, alice):
    announcement = await sync_to_async(announcement_create)(
        title="Maintenance now", expires_at=timezone.now() + timedelta(seconds=EXPIRES_IN)
    )
    await sync_to_async(announcement_publish)(announcement=announcement)
    async with chromium() as browser:
        page, row = await inbox_showing(browser, server, announcement)

        await expect(row).to_have_count(0, timeout=(EXPIRES_IN + 10) * 1000)
        await expect(page.locator("#announcement-banner")).to_be_hidden()
        await expect(page.locator("#bell-badge")).to_be_hidden(timeout=5000)


async def test_expire_now_takes_the_announcement_off_an_open_page(server, alice):
    announcement = await sync_to_async(announcement_create)(title="Office closed")
    await sync_to_async(announcement_publish)(announcement=announcement)
    async with chromium() as browser:
        page, row = await inbox_showing(browser, server, announcement)
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")

        await sync_to_async(announcement_expire)(announcement=announcement)  # as "Expire now"

        await expect(row).to_have_count(0, timeout=5000)
        await expect(page.locator("#announcement-banner")).to_be_hidden()
        await expect(page.locator("#bell-badge")).to_be_hidden(timeout=5000)


async def test_reading_the_last_unread_row_shows_the_empty_state(server, alice):
    n = await create(recipient=alice, title="Only one")
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await page.check("#inbox-unread-only")
        row = page.locator(f'#inbox-list li[data-id="{n.pk}"]')
        await expect(row).to_be_visible()
        await row.locator(".mark-read").click()
        await expect(page.locator("#inbox-list")).to_have_text("No unread notifications.")


async def test_a_failed_inbox_load_says_so_and_can_be_retried(server, alice):
    await create(recipient=alice, title="Still here")
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")

        async def fail(route):
            await route.fulfill(status=503, json={"error": "try later"})

        await page.route("**/api/notifications/?*", fail)
        await page.check("#inbox-unread-only")
        error = page.locator("#inbox-list .load-error")
        await expect(error).to_contain_text("Could not load notifications (try later)")

        await page.unroute("**/api/notifications/?*")
        await error.get_by_role("button", name="Try again").click()
        await expect(page.locator("#inbox-list .item-title")).to_have_text(["Still here"])


async def test_logging_out_in_another_tab_shows_a_signed_out_banner(server, alice):
    async with chromium() as browser:
        context = await browser.new_context()
        page = await context.new_page()
        await log_in(page, server.url, "alice")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        other = await context.new_page()
        await other.goto(f"{server.url}/notifications/")
        await other.click("#logout-button")

        banner = page.locator("#signed-out")
        await expect(banner).to_contain_text("You have been signed out", timeout=5000)
        await expect(banner.get_by_role("link", name="Log in again")).to_have_attribute(
            "href", "/login/?next=%2Fnotifications%2F"
        )
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "signed-out")
