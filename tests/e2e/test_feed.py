"""The live activity feed over a real daphne and Redis, and in Chromium."""

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds.models import Activity, Room
from tests.support.browser import chromium, log_in
from tests.support.factories import session_cookie
from tests.support.sse_client import open_stream

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]

cookie_for = sync_to_async(session_cookie)
create_room = sync_to_async(Room.objects.create)


@sync_to_async
def set_private(room: Room, is_private: bool) -> None:
    room.is_private = is_private
    room.save()


@sync_to_async
def tombstone_id() -> int:
    return Activity.objects.filter(verb=Activity.REMOVED).latest("id").pk


async def test_a_new_public_room_reaches_the_feed_live_and_a_private_one_never(server, alice, bob):
    stream = await open_stream(
        server.url, session=await cookie_for(bob), params={"channel": "activity"}
    )
    try:
        await create_room(slug="secret", title="Secret plans", is_private=True, created_by=alice)
        room = await create_room(slug="design", title="Design", created_by=alice)
        (event,) = await stream.collect("activity", 1, timeout=5)
        item = event.json()
        assert set(item) == {"id", "verb", "actor", "target", "url", "created_at"}
        assert (item["verb"], item["actor"], item["target"], item["url"]) == (
            "created the room", "alice", "Design", f"/chat/{room.slug}/"
        )  # fmt: skip
        assert event.id == f"activity:{item['id']}"
        assert "Secret plans" not in str([e.data for e in await stream.quiet(0.3)])
    finally:
        await stream.close()


async def test_reconnecting_replays_the_feed_items_missed(server, alice):
    cookie = await cookie_for(alice)
    stream = await open_stream(server.url, session=cookie, params={"channel": "activity"})
    last_id = stream.last_id
    await stream.close()
    for slug in ("one", "two"):
        await create_room(slug=slug, title=slug.title())
    again = await open_stream(
        server.url, session=cookie, last_event_id=last_id, params={"channel": "activity"}
    )
    try:
        replayed = await again.collect("activity", 2)
        assert [e.json()["target"] for e in replayed] == ["One", "Two"]
    finally:
        await again.close()


async def test_a_room_made_private_is_removed_live_and_on_replay(server, alice, bob):
    cookie = await cookie_for(bob)
    stream = await open_stream(server.url, session=cookie, params={"channel": "activity"})
    try:
        room = await create_room(slug="plans", title="Plans", created_by=alice)
        (added,) = await stream.collect("activity", 1, timeout=5)
        await set_private(room, True)
        (removed,) = await stream.collect("activity-removed", 1, timeout=5)
        assert removed.json() == {"ids": [added.json()["id"]]}
        assert removed.id == f"activity:{await tombstone_id()}"
    finally:
        await stream.close()
    # A page that left before the removal gets it on reconnect, and never the title again.
    again = await open_stream(
        server.url, session=cookie, last_event_id=added.id, params={"channel": "activity"}
    )
    try:
        (replayed,) = await again.collect("activity-removed", 1, timeout=5)
        assert replayed.json() == removed.json()
        assert "Plans" not in str([e.data for e in await again.quiet(0.3)])
    finally:
        await again.close()


async def test_a_private_room_made_public_is_opened_live(server, alice, bob):
    room = await create_room(slug="lab", title="Lab", is_private=True, created_by=alice)
    stream = await open_stream(
        server.url, session=await cookie_for(bob), params={"channel": "activity"}
    )
    try:
        await set_private(room, False)
        (event,) = await stream.collect("activity", 1, timeout=5)
        item = event.json()
        assert (item["verb"], item["actor"], item["target"]) == ("opened the room", "alice", "Lab")
    finally:
        await stream.close()


@pytest.mark.browser
@pytest.mark.slow
async def test_an_open_feed_page_drops_a_room_made_private(server, alice, bob):
    room = await create_room(slug="plans", title="Secret plans", created_by=bob)
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")
        await page.goto(f"{server.url}/feed/")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        feed = page.locator("#feed-list")
        await expect(feed).to_contain_text("bob created the room Secret plans")

        await set_private(room, True)
        await expect(feed).not_to_contain_text("Secret plans")
        await expect(feed.locator("li.feed-item")).to_have_count(2)  # alice and bob joined


@pytest.mark.browser
@pytest.mark.slow
async def test_the_feed_page_shows_new_rooms_live_and_older_items_on_scroll(server, alice, bob):
    await Activity.objects.abulk_create(
        Activity(verb="created the room", target=f"Old room {i}", url="/chat/") for i in range(35)
    )
    async with chromium() as browser:
        page = await (await browser.new_context(viewport={"width": 1000, "height": 700})).new_page()
        await log_in(page, server.url, "alice")
        await page.goto(f"{server.url}/feed/")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        items = page.locator("#feed-list li.feed-item")
        await expect(items).to_have_count(30)
        await expect(items.first).to_contain_text("Old room 34")

        await create_room(slug="launch", title="Launch party", created_by=bob)
        await expect(items.first).to_contain_text("bob created the room Launch party")
        await expect(items.first.locator("a")).to_have_attribute("href", "/chat/launch/")

        await page.locator("#feed-more").scroll_into_view_if_needed()
        await expect(items).to_have_count(38)  # 35 old rooms, launch, alice and bob joined
        await expect(items.last).to_contain_text("alice joined Pulse")
        await expect(page.locator("#feed-more")).to_be_hidden()
