"""Headless Chromium for page tests (Debian's chromium driven by Playwright's async API)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from playwright.async_api import Browser, Page, async_playwright, expect

from tests.support.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def log_in(page: Page, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Log in through the real login form, as a person would."""
    await page.goto(f"{base_url}/login/")
    await page.fill("#id_username", username)
    await page.fill("#id_password", password)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base_url}/notifications/")


async def signed_in_page(browser: Browser, base_url: str, username: str) -> Page:
    """A page of `username`, logged in, in a browser context (cookies) of its own."""
    page = await (await browser.new_context()).new_page()
    await log_in(page, base_url, username)
    return page


async def open_room(browser: Browser, base_url: str, username: str, slug: str) -> Page:
    """A chat room page of `username` in a context of its own, once it is live."""
    page = await signed_in_page(browser, base_url, username)
    await page.goto(f"{base_url}/chat/{slug}/")
    await expect(page.locator("#chat-status")).to_have_text("Live")
    return page


RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.effectiveDirective} ${e.blockedURI} ${e.sourceFile}`);
});
"""


async def violations(page: Page) -> list[str]:
    return await page.evaluate("window.__violations")
