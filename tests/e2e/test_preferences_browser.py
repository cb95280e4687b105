"""The notification settings page in Chromium: reached from the inbox, saved, refused."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from notifications.preferences import preferences_get, preferences_update
from notifications.services import announcement_create, announcement_publish
from tests.support.browser import RECORD_VIOLATIONS, chromium, log_in, violations

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


async def test_a_user_changes_their_settings_and_sees_bad_input_refused(server, alice):
    async with chromium() as browser:
        context = await browser.new_context()
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        await log_in(page, server.url, "alice")
        await page.click("#inbox-settings")
        await page.wait_for_url(f"{server.url}/notifications/settings/")
        await expect(page.locator("#in_app-account")).to_be_disabled()
        await expect(page.locator("#in_app-account")).to_be_checked()
        await page.uncheck("#in_app-chat")
        await page.select_option("#email-general", "daily")
        await page.fill("#quiet_start", "22:00")
        await page.fill("#quiet_end", "07:00")
        await page.select_option("#time_zone", "Europe/Berlin")
        await page.click("#prefs-save")
        await expect(page.locator("#prefs-saved")).to_have_text("Settings saved.")
        await expect(page.locator("#in_app-chat")).not_to_be_checked()
        await expect(page.locator("#email-general")).to_have_value("daily")
        await page.fill("#quiet_end", "")
        await page.click("#prefs-save")
        await expect(page.locator("#prefs-error")).to_contain_text("quiet_hours start and end")
        assert await violations(page) == []
    prefs = await sync_to_async(preferences_get)(user_id=alice.pk)
    assert prefs["categories"]["chat"]["in_app"] is False
    assert prefs["categories"]["general"]["email"] == "daily"
    assert prefs["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert prefs["time_zone"] == "Europe/Berlin"


async def test_a_live_announcement_of_a_muted_category_is_not_shown(server, alice):
    await sync_to_async(preferences_update)(
        user=alice, data={"categories": {"announcements": {"in_app": False}}}
    )
    async with chromium() as browser:
        page = await browser.new_page()
        await log_in(page, server.url, "alice")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        for title, kind in (("News", "announcement"), ("Breach", "account.security")):
            announcement = await sync_to_async(announcement_create)(title=title, kind=kind)
            await sync_to_async(announcement_publish)(announcement=announcement)
        banner = page.locator("#announcement-banner")
        await expect(banner).to_contain_text("Breach")  # sent after News: News came first
        await expect(banner).not_to_contain_text("News")
        await expect(page.locator("#bell-badge")).to_have_text("1")
