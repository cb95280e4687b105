"""Two people on the shared board in headless Chromium, each on a different server process."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import Page, expect

from demos.models import Board
from tests.support.browser import chromium, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

COLUMNS = ("todo", "doing", "done")
# Set to a directory to keep screenshots of the finished board (for reviewing the page).
SCREENSHOTS = os.environ.get("BOARD_SCREENSHOTS", "")


async def open_board(browser, base_url: str, username: str) -> Page:
    page = await (await browser.new_context()).new_page()
    await log_in(page, base_url, username)
    await page.goto(f"{base_url}/demos/board/")
    await expect(page.locator("#board-status")).to_have_text("Live")
    return page


def texts(page: Page, column: str):
    return page.locator(f'[data-column="{column}"] .board-card-text')


async def board_of(page: Page) -> dict[str, list[str]]:
    return {column: await texts(page, column).all_text_contents() for column in COLUMNS}


async def expect_board(page: Page, expected: dict[str, list[str]]) -> None:
    for column in COLUMNS:
        await expect(texts(page, column)).to_have_text(expected[column])


async def add(page: Page, column: str, text: str) -> None:
    await page.fill(f"#add-{column}", text)
    await page.press(f"#add-{column}", "Enter")


def card(page: Page, text: str):
    return page.locator(".board-card", has=page.locator(".board-card-text", has_text=text))


async def act(page: Page, text: str, action: str) -> None:
    target = card(page, text)
    await target.hover()
    await target.locator(f'button[data-act="{action}"]').click()


async def board_version() -> int:
    return await sync_to_async(Board.objects.values_list("version", flat=True).get)()


async def expect_version(pages: tuple[Page, ...], version: int) -> None:
    for page in pages:
        await expect(page.locator("#board-version")).to_have_text(f"v{version}")


@asynccontextmanager
async def one_change(*pages: Page) -> AsyncIterator[None]:
    """Wait until every page shows the board's current version, let the body make one
    change, and wait until every page has applied it. An assertion made after the change
    then checks its result: it cannot pass on the board as it was before (or the version
    before), however the operation races the assertion."""
    version = await board_version()
    await expect_version(pages, version)
    yield
    await expect_version(pages, version + 1)


async def test_two_people_edit_one_board_and_see_the_same_order(server, second_server, alice, bob):
    async with chromium() as browser:
        a = await open_board(browser, server.url, "alice")
        b = await open_board(browser, second_server.url, "bob")

        for text in ("Write the spec", "Build it", "Ship it"):
            await add(a, "todo", text)
        await expect(texts(b, "todo")).to_have_text(["Write the spec", "Build it", "Ship it"])
        await expect(b.locator("#board-activity")).to_have_text("alice added “Ship it” to To do.")

        async with one_change(a, b):
            await act(b, "Build it", "right")  # to Doing, bob on the other server
        await expect(texts(a, "doing")).to_have_text(["Build it"])
        await expect(texts(a, "todo")).to_have_text(["Write the spec", "Ship it"])
        # alice's page shows "Ship it" second: "up" moves it to the top, on both pages.
        async with one_change(a, b):
            await act(a, "Ship it", "up")
        for page in (a, b):
            await expect(texts(page, "todo")).to_have_text(["Ship it", "Write the spec"])

        # alice drags "Write the spec" to the top half of "Ship it": it lands above it.
        async with one_change(a, b):
            await card(a, "Write the spec").drag_to(
                card(a, "Ship it"), target_position={"x": 20, "y": 4}
            )
        await expect(texts(b, "todo")).to_have_text(["Write the spec", "Ship it"])
        async with one_change(a, b):
            await card(b, "Build it").drag_to(b.locator('[data-column="done"] .board-cards'))
        await expect(texts(a, "done")).to_have_text(["Build it"])

        await act(b, "Write the spec", "edit")
        async with one_change(a, b):
            await b.fill(".board-edit textarea", "Write the <b>spec</b>")
            await b.press(".board-edit textarea", "Enter")
        await expect(texts(a, "todo")).to_have_text(["Write the <b>spec</b>", "Ship it"])
        assert await a.locator(".board-card-text b").count() == 0  # text, never HTML
        await expect(a.locator("#board-activity")).to_have_text(
            "bob edited “Write the <b>spec</b>”."
        )

        expected = {"todo": ["Write the <b>spec</b>", "Ship it"], "doing": [], "done": ["Build it"]}
        await expect_board(a, expected)
        await expect_board(b, expected)
        await expect_version((a, b), await board_version())
        if SCREENSHOTS:
            await a.screenshot(path=os.path.join(SCREENSHOTS, "board.png"), full_page=True)

        # A reloaded page shows the current board, and stays live.
        await b.reload()
        await expect(b.locator("#board-status")).to_have_text("Live")
        await expect_board(b, expected)
        await add(a, "doing", "Review")
        await expect(texts(b, "doing")).to_have_text(["Review"])
        assert await board_of(a) == await board_of(b)
