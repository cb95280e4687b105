"""The links of a notification email, followed in Chromium against a real server."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone
from playwright.async_api import expect

from notifications.emails.worker import run_pass
from notifications.models import CategoryPreference, Notification
from notifications.services import notification_create
from tests.support.browser import RECORD_VIOLATIONS, chromium, log_in, violations
from tests.support.factories import PASSWORD
from tests.support.smtp import body_of

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]


@sync_to_async
def missed(user, **fields) -> Notification:
    n = notification_create(recipient=user, **fields)
    Notification.objects.filter(pk=n.pk).update(created_at=timezone.now() - timedelta(minutes=11))
    return n


async def test_the_open_link_logs_in_marks_read_and_unsubscribe_needs_no_session(
    server, alice, smtp, settings
):
    settings.SITE_URL = server.url
    n = await missed(alice, title="bob replied", url="/feed/")
    await sync_to_async(run_pass)()
    [message] = smtp.wait_for(1)
    html = body_of(message, "html")
    open_url = re.search(r'href="([^"]+/open/)"', html).group(1)
    unsubscribe_url = str(message["List-Unsubscribe"]).strip().strip("<>")

    async with chromium() as browser:
        context = await browser.new_context()
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        await page.goto(open_url)  # no session yet: the login form, then the notification
        await page.fill("#id_username", "alice")
        await page.fill("#id_password", PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{server.url}/feed/")
        assert (await sync_to_async(Notification.objects.get)(pk=n.pk)).read_at is not None

        stranger = await (await browser.new_context()).new_page()
        await stranger.goto(unsubscribe_url)
        await stranger.click("#unsubscribe-form button")
        await expect(stranger.locator("#unsubscribe-done")).to_contain_text("General")
        assert await violations(page) == []
    pref = await sync_to_async(CategoryPreference.objects.get)(user=alice, category="general")
    assert pref.email == "off"


async def test_a_notification_shown_on_an_open_page_is_not_emailed(server, alice, bob, smtp):
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        await sync_to_async(notification_create)(recipient=alice, title="seen on the page")
        await expect(page.locator("#bell-badge")).to_have_text("1")
    await sync_to_async(Notification.objects.update)(
        created_at=timezone.now() - timedelta(minutes=11)
    )
    await missed(bob, title="bob was away")
    tally = await sync_to_async(run_pass)()
    assert [m["To"] for m in smtp.wait_for(1)] == ["bob@example.com"]
    assert tally.skipped == {"seen live": 1}
