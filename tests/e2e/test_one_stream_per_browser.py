"""One notification stream per browser: tabs elect a leader (static/notifications/tabs.js).

One Playwright browser context is one browser profile: its tabs share Web Locks and
BroadcastChannels, another context has its own.
"""

from __future__ import annotations

import asyncio

import httpx
import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import BrowserContext, Page, expect

from notifications.services import notification_create
from tests.support.browser import chromium, log_in
from tests.support.factories import cookie_for, make_user
from tests.support.proxy import Proxy
from tests.support.waiting import until

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

create = sync_to_async(notification_create)
TABS = 5
# A tab without Web Locks, as in a browser that lacks them: it must stream on its own.
NO_LOCKS = "Object.defineProperty(Navigator.prototype, 'locks', { get: () => undefined });"


@pytest.fixture
async def streams(server, db):
    """Read the server's open SSE stream count (a staff-only gauge of /api/health/)."""
    ops = await sync_to_async(make_user)("ops", is_staff=True)
    async with httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": await cookie_for(ops)}
    ) as client:

        async def count(gauge: str = "sse_streams") -> int:
            response = await client.get("/api/health/")
            assert response.status_code == 200, response.text
            return response.json()[gauge]

        yield count


async def settle_at(streams, expected: int) -> None:
    """The gauge reaches `expected` and stays there (no tab opens a late stream)."""
    await until(lambda: _equals(streams, expected), 20, f"{expected} SSE streams")
    await asyncio.sleep(1.5)
    assert await streams() == expected


async def _equals(streams, expected: int) -> bool:
    return await streams() == expected


async def open_tabs(context: BrowserContext, base_url: str, count: int) -> list[Page]:
    first = await context.new_page()
    await log_in(first, base_url, "alice")
    tabs = [first]
    for _ in range(count - 1):
        tab = await context.new_page()
        await tab.goto(f"{base_url}/notifications/")
        tabs.append(tab)
    for tab in tabs:
        await expect(tab.locator("#conn-state")).to_have_attribute("data-state", "open")
    return tabs


async def leader_of(tabs: list[Page]) -> Page:
    leaders = [
        t for t in tabs if await t.locator("#conn-state").get_attribute("data-stream") == "leader"
    ]
    assert len(leaders) == 1, f"{len(leaders)} leaders"
    return leaders[0]


async def shows_each_once(tab: Page, ids: list[int]) -> None:
    """Every id is one row of the inbox, and no other live row arrived."""
    for pk in ids:
        await expect(tab.locator(f'#inbox-list li[data-id="{pk}"]')).to_have_count(1, timeout=10000)
    await expect(tab.locator("#inbox-list li.item")).to_have_count(len(ids))
    await expect(tab.locator("#bell-badge")).to_have_text(str(len(ids)))


async def test_five_tabs_share_one_stream_and_survive_losing_the_leader(server, alice, streams):
    before = await streams()
    async with chromium() as browser:
        tabs = await open_tabs(await browser.new_context(), server.url, TABS)
        await settle_at(streams, before + 1)
        await leader_of(tabs)

        # every tab shows each notification once; one tab of the browser toasts it
        ids = []
        for i in range(3):
            ids.append((await create(recipient=alice, title=f"Shared {i}")).pk)
            await asyncio.sleep(0.7)  # under the toast burst limit of 3 per 2 s
        for tab in tabs:
            await shows_each_once(tab, ids)
        for i in range(3):
            toasted = [await t.locator(".toast", has_text=f"Shared {i}").count() for t in tabs]
            assert sum(toasted) == 1, (i, toasted)

        # the leader goes away while notifications keep coming
        async def keep_notifying() -> None:
            for i in range(12):
                ids.append((await create(recipient=alice, title=f"During {i}")).pk)
                await asyncio.sleep(0.25)

        notifying = asyncio.create_task(keep_notifying())
        await asyncio.sleep(1)
        leader = await leader_of(tabs)
        await leader.close()
        tabs.remove(leader)
        # a tab opened meanwhile: its page has some rows, the rest come relayed, none twice
        late = await tabs[0].context.new_page()
        await late.goto(f"{server.url}/notifications/")
        tabs.append(late)
        await notifying

        await settle_at(streams, before + 1)
        await leader_of(tabs)
        for tab in tabs:
            await shows_each_once(tab, ids)
            await expect(tab.locator("#conn-state")).to_have_attribute("data-state", "open")

        # a logout in one more tab ends the session: the stream's `session-ended` reaches all
        other = await tabs[0].context.new_page()
        await other.goto(f"{server.url}/notifications/")
        await other.click("#logout-button")
        for tab in tabs:
            await expect(tab.locator("#signed-out")).to_contain_text("You have been signed out")
            await expect(tab.locator("#conn-state")).to_have_attribute("data-state", "signed-out")
        await settle_at(streams, before)

        # signed-out tabs give the lock up: a new login's page takes the stream
        again = await other.context.new_page()
        await log_in(again, server.url, "alice")
        await expect(again.locator("#conn-state")).to_have_attribute("data-stream", "leader")
        await settle_at(streams, before + 1)
        n = await create(recipient=alice, title="After logging in again")
        await expect(again.locator(f'#inbox-list li[data-id="{n.pk}"]')).to_have_count(1)
    await settle_at(streams, before)


async def test_each_browser_profile_has_its_own_stream_and_lockless_tabs_their_own(
    server, alice, streams
):
    before = await streams()
    async with chromium() as browser:
        await open_tabs(await browser.new_context(), server.url, 2)
        await open_tabs(await browser.new_context(), server.url, 2)
        await settle_at(streams, before + 2)

        lockless = await browser.new_context()
        await lockless.add_init_script(NO_LOCKS)
        tabs = await open_tabs(lockless, server.url, 2)
        await settle_at(streams, before + 4)
        for tab in tabs:
            await expect(tab.locator("#conn-state")).to_have_attribute("data-stream", "own")
        n = await create(recipient=alice, title="To everyone")
        for tab in tabs:
            await shows_each_once(tab, [n.pk])
    await settle_at(streams, before)


async def test_tabs_behind_a_buffering_proxy_share_the_leaders_polls(server, alice, streams):
    async with Proxy(server.port, buffer=True) as proxy, chromium() as browser:
        tabs = await open_tabs(await browser.new_context(), proxy.url, 3)
        for tab in tabs:  # the leader fell back to long polls; the others say so too
            await expect(tab.locator("#conn-state")).to_have_attribute(
                "data-transport", "poll", timeout=15_000
            )
        await until(lambda: _equals(lambda: streams("held_polls"), 1), 20, "1 held poll")
        ids = [(await create(recipient=alice, title=f"Polled {i}")).pk for i in range(3)]
        for tab in tabs:
            await shows_each_once(tab, ids)
        for _ in range(5):
            assert await streams("held_polls") <= 1
            await asyncio.sleep(0.2)


# (event id, the stream's id before it, a tab's position) -> is the event new to that tab?
AFTER_CASES = [
    ("u:43,r:3", "u:42,r:3", "u:42,r:3", True),  # the next event
    ("u:42,r:3", "u:41,r:3", "u:42,r:3", False),  # already had it
    ("u:42,r:4", "u:42,r:3", "u:43,r:3", True),  # a page ahead on another channel
    ("u:43,r:3", "u:42,r:3", "u:43,r:2", False),  # ...and behind on this one's
    ("u:5,a:1", "u:5", "u:5", True),  # a channel the tab never saw (joined a group)
    ("u:5", "u:5", "u:9", True),  # moved nothing (a stream-error): never old
    ("u:6", "", "u:9", False),  # no previous id: any channel ahead of the tab counts
    ("u:6", "u:5", "", True),  # the tab has no position (after a reset)
]


async def test_a_tab_tells_new_events_from_old_by_their_per_channel_positions(server, alice):
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        got = await page.evaluate(
            """async (cases) => {
              const { isAfter } = await import("/static/notifications/tabs.js");
              return cases.map(([id, prev, since]) => isAfter(id, prev, since));
            }""",
            [case[:3] for case in AFTER_CASES],
        )
    assert got == [case[3] for case in AFTER_CASES]
