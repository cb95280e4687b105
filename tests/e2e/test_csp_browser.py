"""The Content-Security-Policy in real Chromium: the pages and the admin run, injected
inline script does not."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds.models import Room
from notifications.services import notification_create
from tests.support.browser import RECORD_VIOLATIONS, chromium, log_in, violations
from tests.support.factories import make_user

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

# Runs before any page script (through DevTools, so the policy does not apply to it).
INJECT = """() => new Promise((done) => {
  document.addEventListener("securitypolicyviolation", (e) => done(e.effectiveDirective),
                            { once: true });
  const script = document.createElement("script");
  script.textContent = "window.__injected = true";
  document.body.append(script);
  const img = document.createElement("img");
  img.setAttribute("src", "data:,");
  img.setAttribute("onerror", "window.__injected = true");
  document.body.append(img);
  setTimeout(() => done("no violation"), 2000);
})"""


async def test_pages_run_their_modules_and_refuse_injected_inline_script(server, alice):
    await sync_to_async(notification_create)(recipient=alice, title="Hello")
    await sync_to_async(Room.objects.create)(slug="lobby", title="Lobby")
    async with chromium() as browser:
        context = await browser.new_context()
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        await log_in(page, server.url, "alice")
        # live.js ran: the stream is open and the badge counted
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        await expect(page.locator("#bell-badge")).to_have_text("1")
        response = await page.goto(f"{server.url}/notifications/")
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy
        assert "frame-ancestors 'none'" in policy
        assert "unsafe-inline" not in policy
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")

        assert await page.evaluate(INJECT) == "script-src-elem"
        assert await page.evaluate("window.__injected") is None

        await page.goto(f"{server.url}/chat/lobby/")
        await expect(page.locator("#chat-status")).to_have_text("Live")  # chat.js's socket
        await page.goto(f"{server.url}/feed/")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        await page.goto(f"{server.url}/chat/")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        assert await violations(page) == []


async def test_the_admin_works_under_the_policy(server):
    await sync_to_async(make_user)("root", is_staff=True, is_superuser=True)
    async with chromium() as browser:
        context = await browser.new_context()
        await context.add_init_script(RECORD_VIOLATIONS)
        page = await context.new_page()
        await log_in(page, server.url, "root")
        seen = []
        for path in (
            "/admin/",
            "/admin/notifications/announcement/",
            "/admin/notifications/announcement/add/",
            "/admin/auth/user/",
            "/admin/auth/user/add/",
        ):
            response = await page.goto(f"{server.url}{path}")
            assert response.status == 200, path
            assert "content-security-policy" in response.headers, path
            seen += await violations(page)
        # The admin's scripts ran: the announcement form's date shortcuts were added by JS,
        # and the change list's "select all" checkbox works.
        await page.goto(f"{server.url}/admin/notifications/announcement/add/")
        await expect(page.locator(".datetimeshortcuts").first).to_be_visible()
        seen += await violations(page)
        assert seen == []
