"""A chat page in Chromium through a rolling restart behind nginx: chat.js and live.js follow
their process's 1012 and `server-restart` to another one without showing an error, and
show everything posted meanwhile (realtime/drain.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds import services
from feeds.models import Room
from notifications.services import notification_create
from tests.support.browser import chromium, log_in
from tests.support.nginx import Nginx
from tests.support.servers import RUN_DIR, UNCAPPED, Server, server_processes

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

DRAIN_SECONDS = 2

# Every state the chat status, the bell's connection dot and the chat banner take.
WATCH = """() => {
  window.seen = { chat: [], conn: [], banner: [] };
  const status = document.getElementById("chat-status");
  const conn = document.getElementById("conn-state");
  const banner = document.getElementById("chat-banner");
  const note = () => {
    const last = (list, value) => list[list.length - 1] !== value && list.push(value);
    last(window.seen.chat, status.dataset.state);
    last(window.seen.conn, conn.dataset.state);
    last(window.seen.banner, banner.hidden ? "hidden" : banner.textContent);
  };
  for (const el of [status, conn, banner]) {
    new MutationObserver(note).observe(el, { attributes: true, childList: true });
  }
  note();
}"""


@pytest.fixture
def processes(django_db_blocker, redis_server) -> Iterator[list[Server]]:
    env = {**UNCAPPED, "DRAIN_SECONDS": str(DRAIN_SECONDS)}
    with (
        django_db_blocker.unblock(),
        server_processes(2, redis_url=redis_server.url, name="drain", env=env) as servers,
    ):
        yield servers


@pytest.fixture
def nginx(processes: list[Server]) -> Iterator[Nginx]:
    proxy = Nginx([f"{s.host}:{s.port}" for s in processes], directory=RUN_DIR / "nginx-drain")
    proxy.start()
    yield proxy
    proxy.stop()


async def test_a_page_follows_a_rolling_restart_without_an_error_and_misses_nothing(
    processes, nginx, alice, bob
):
    room = await sync_to_async(Room.objects.create)(slug="drain", title="Drain")
    post = sync_to_async(services.message_post)
    notify = sync_to_async(notification_create)
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, nginx.url, "alice")
        await page.goto(f"{nginx.url}/chat/drain/")
        await expect(page.locator("#chat-status")).to_have_text("Live")
        await expect(page.locator("#conn-state")).to_have_attribute("data-state", "open")
        await page.evaluate(WATCH)

        posted = []
        for n, server in enumerate(processes):
            await asyncio.to_thread(server.process.terminate)  # SIGTERM: it drains
            for k in range(3):  # while it drains
                posted.append(f"during restart {n}.{k}")
                await post(room=room, author=bob, content=posted[-1])
                await notify(recipient=alice, title=posted[-1])
                await asyncio.sleep(DRAIN_SECONDS / 3)
            await asyncio.to_thread(server.process.wait, DRAIN_SECONDS + 20)
            await asyncio.to_thread(server.start)
            if server is not processes[-1]:
                await nginx.take_back()  # as the README tells operators

        await expect(page.locator(".msg-body")).to_have_text(posted, timeout=20_000)
        await expect(page.locator("#bell-badge")).to_have_text(str(len(posted)))
        await expect(page.locator("#chat-status")).to_have_text("Live")
        seen = await page.evaluate("window.seen")

    print(f"states seen: {seen}")
    assert seen["banner"] == ["hidden"], seen  # no error shown
    assert "offline" not in seen["conn"], seen  # the bell's dot never said "offline"
    assert set(seen["chat"]) == {"open", "connecting"}, seen  # moved, and back
    assert "connecting" in seen["conn"], seen
