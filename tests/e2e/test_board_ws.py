"""The shared board over two real daphne processes, a real Redis and real WebSocket clients.

The processes share nothing but Redis (the channel layer) and the database: an operation
applied on one reaches the other's tabs only through `group_send`.
"""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from demos import selectors, services
from demos.models import Board
from tests.support.factories import session_cookie
from tests.support.replica import Replica, order

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

cookie_for = sync_to_async(session_cookie)
snapshot_now = sync_to_async(selectors.board_snapshot)


@pytest.fixture
async def board(alice) -> Board:
    return await sync_to_async(services.board_ensure)(slug="demo", title="Shared board")


class Tab:
    """One browser tab's socket and its copy of the board, with every version it was sent."""

    def __init__(self, ws: ClientConnection, snapshot: dict[str, Any]) -> None:
        self.ws = ws
        self.replica = Replica(snapshot)
        self.received: list[int] = []

    async def frame(self, timeout: float = 5.0) -> dict[str, Any]:
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def until(self, version: int, timeout: float = 10.0) -> None:
        """Apply the operations the tab is sent until it holds `version`."""
        async with asyncio.timeout(timeout):
            while self.replica.version < version:
                frame = await self.frame(timeout)
                assert frame["type"] == "ops", frame
                for op in frame["ops"]:
                    self.received.append(op["version"])
                    self.replica.apply(op)  # asserts version order, each once

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def quiet(self, seconds: float = 0.5) -> bool:
        """True if the tab is sent nothing more for `seconds`."""
        try:
            await asyncio.wait_for(self.ws.recv(), seconds)
        except TimeoutError:
            return True
        return False


async def socket(server, user, *, origin: str | None = None) -> ClientConnection:
    headers = {"Origin": origin or server.url}
    if user is not None:
        headers["Cookie"] = f"sessionid={await cookie_for(user)}"
    return await connect(
        f"{server.ws_url}/ws/demos/board/demo/", additional_headers=headers, open_timeout=5
    )


async def open_tab(server, user, since: int | None = None) -> tuple[Tab, dict[str, Any]]:
    """A synced tab and the first frame it was sent (the snapshot or the catch-up)."""
    ws = await socket(server, user)
    await ws.send(json.dumps({"type": "sync", "since": since}))
    first = json.loads(await asyncio.wait_for(ws.recv(), 5))
    if first["type"] == "snapshot":
        return Tab(ws, first), first
    tab = Tab(ws, {"version": since, "columns": []})
    return tab, first


async def test_refused_handshakes_get_http_403(server, board, alice):
    for user, origin in ((None, None), (alice, "https://evil.example")):
        with pytest.raises(InvalidStatus) as refused:
            await socket(server, user, origin=origin)
        assert refused.value.response.status_code == 403


async def test_an_op_applied_on_one_process_reaches_a_tab_on_the_other(
    server, second_server, board, alice, bob
):
    a, _ = await open_tab(server, alice)
    b, _ = await open_tab(second_server, bob)
    try:
        await a.send(type="create", column="doing", text="from server one", client_op_id="a-1")
        sent_to_a, sent_to_b = await a.frame(), await b.frame()
        assert sent_to_a == sent_to_b
        assert sent_to_b["ops"][0] | {"card": 0} == {
            "version": 1,
            "op": "create",
            "card": 0,
            "column": "doing",
            "index": 0,
            "text": "from server one",
            "by": "alice",
            "client_op_id": "a-1",
        }
        await b.send(type="move", card=sent_to_b["ops"][0]["card"], column="done", index=3)
        moved_a, moved_b = await a.frame(), await b.frame()
        assert moved_a == moved_b
        op = moved_b["ops"][0]
        assert (op["version"], op["by"], op["column"], op["index"]) == (2, "bob", "done", 0)
    finally:
        await a.ws.close()
        await b.ws.close()


async def test_concurrent_moves_on_both_processes_converge_to_one_order(
    server, second_server, board, alice, bob
):
    for i in range(6):
        await sync_to_async(services.card_create)(
            board_id=board.pk, author=alice, column="todo", text=f"card {i}"
        )
    a, start = await open_tab(server, alice)
    b, _ = await open_tab(second_server, bob)
    ids = [card for cards in order(start).values() for card in cards]
    rng = random.Random(12)

    def moves(tab_name: str) -> list[dict[str, Any]]:
        # Every move is planned against the same (soon stale) version 6.
        return [
            {
                "type": "move",
                "card": rng.choice(ids),
                "column": rng.choice(["todo", "doing", "done"]),
                "index": rng.randrange(0, 8),
                "client_op_id": f"{tab_name}-{n}",
            }
            for n in range(8)
        ]

    plans = {a: moves("a"), b: moves("b")}
    try:
        # Both tabs fire at once, without waiting for each other or for answers.
        await asyncio.gather(*(tab.send(**m) for tab, ms in plans.items() for m in ms))
        final = 6 + 16
        await asyncio.gather(a.until(final), b.until(final))
        assert a.received == b.received == list(range(7, final + 1))
        now = await snapshot_now(board_id=board.pk)
        assert a.replica.order() == b.replica.order() == order(now)
        assert now["version"] == final
        assert all(await asyncio.gather(a.quiet(), b.quiet()))  # nothing sent twice
    finally:
        await a.ws.close()
        await b.ws.close()


async def test_a_tab_that_reconnects_catches_up_exactly_once_in_order(
    server, second_server, board, alice, bob
):
    a, _ = await open_tab(server, alice)
    b, _ = await open_tab(second_server, bob)
    try:
        await a.send(type="create", column="todo", text="seen by both")
        await b.until(1)
        held = b.replica
        await b.ws.close()  # bob's tab drops; alice carries on on the other process

        await a.send(type="create", column="todo", text="missed 1")
        await a.until(2)
        card = a.replica.order()["todo"][0]
        for n, column in enumerate(["doing", "done", "todo", "doing"]):
            await a.send(type="move", card=card, column=column, index=0, client_op_id=f"m{n}")
        await a.send(type="edit", card=card, text="missed, then edited")
        await a.until(7)

        ws = await socket(second_server, bob)
        b = Tab(ws, {"version": 0, "columns": []})
        b.replica = held
        await b.send(type="sync", since=held.version)
        await b.until(7)
        assert b.received == [2, 3, 4, 5, 6, 7]  # each missed version once, in order
        await a.send(type="create", column="done", text="live again")
        await asyncio.gather(a.until(8), b.until(8))
        assert b.received == [2, 3, 4, 5, 6, 7, 8]
        assert await b.quiet()
        now = await snapshot_now(board_id=board.pk)
        assert b.replica.order() == a.replica.order() == order(now)
        assert b.replica.columns == {c["id"]: c["cards"] for c in now["columns"]}
        await b.ws.close()

        # A tab still at version 1, too far behind the log: a snapshot of the board as it is.
        for n in range(selectors.CATCHUP_MAX):
            await sync_to_async(services.card_edit)(
                board_id=board.pk, author=alice, card_id=card, text=f"edit {n}"
            )
        await a.until(8 + selectors.CATCHUP_MAX)  # applied in the test process: live too
        b, first = await open_tab(second_server, bob, since=1)
        assert (first["type"], first["version"]) == ("snapshot", 8 + selectors.CATCHUP_MAX)
        assert order(first) == order(await snapshot_now(board_id=board.pk))
        await b.ws.close()
    finally:
        await a.ws.close()
