"""The shipped link check (static/notifications/links.js) in Chromium, on the Python table."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.browser import chromium

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

CASES = json.loads((Path(__file__).parent.parent / "data" / "link_urls.json").read_text())["cases"]

# For each case: what links.js answers, and the host the browser resolves that href to.
JUDGE = """async (cases) => {
  const { safeHref } = await import("/static/notifications/links.js");
  return cases.map(([url]) => {
    const a = document.createElement("a");
    a.href = url;
    return [safeHref(url) !== null, a.host];
  });
}"""


async def test_the_browser_check_agrees_with_the_server_and_keeps_links_on_site(server):
    async with chromium() as browser:
        page = await browser.new_page()
        await page.goto(f"{server.url}/login/")
        answers = await page.evaluate(JUDGE, CASES)
    site = f"{server.host}:{server.port}"
    wrong = [url for (url, linkable), (ok, _) in zip(CASES, answers, strict=True) if ok != linkable]
    assert wrong == []
    # Every accepted path stays on this host, as the browser itself resolves it.
    off_site = [
        url
        for (url, _), (ok, host) in zip(CASES, answers, strict=True)
        if ok and url.strip().startswith("/") and host != site
    ]
    assert off_site == []
