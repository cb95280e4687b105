"""Catch-up: the operations after a version, or a snapshot; both fit in one WebSocket message."""

from __future__ import annotations

import pytest

from demos import protocol, selectors, services
from demos.models import TEXT_MAX, Board
from tests.support.factories import make_user
from tests.support.replica import Replica, order

pytestmark = pytest.mark.django_db

# daphne's cap on one WebSocket message (notifications/management/commands/serve.py).
MESSAGE_MAX = 65536


@pytest.fixture
def board() -> Board:
    return services.board_ensure(slug="demo", title="Shared board")


def add(board: Board, user, count: int, text: str = "card") -> list[dict]:
    return [
        services.card_create(board_id=board.pk, author=user, column="todo", text=f"{text} {i}")
        for i in range(count)
    ]


def test_a_tab_with_nothing_gets_a_snapshot_of_every_column_in_order(board, alice):
    ops = add(board, alice, 2)
    services.card_move(
        board_id=board.pk, author=alice, card_id=ops[1]["card"], column="done", index=0
    )
    frame = selectors.board_catch_up(board_id=board.pk, since=None)
    assert frame == {
        "type": "snapshot",
        "board": "demo",
        "version": 3,
        "columns": [
            {"id": "todo", "title": "To do", "cards": [
                {"id": ops[0]["card"], "text": "card 0", "by": "alice"}]},
            {"id": "doing", "title": "Doing", "cards": []},
            {"id": "done", "title": "Done", "cards": [
                {"id": ops[1]["card"], "text": "card 1", "by": "alice"}]},
        ],
    }  # fmt: skip


def test_a_tab_a_few_versions_behind_gets_exactly_the_ops_after_its_version(
    board, alice, django_assert_num_queries
):
    old = selectors.board_snapshot(board_id=board.pk)
    ops = add(board, alice, 5)
    with django_assert_num_queries(2):
        frame = selectors.board_catch_up(board_id=board.pk, since=2)
    assert frame == protocol.ops(ops[2:])
    replica = Replica(old)
    for op in ops[:2] + frame["ops"]:
        replica.apply(op)
    assert replica.order() == order(selectors.board_snapshot(board_id=board.pk))


def test_an_up_to_date_tab_gets_no_ops(board, alice):
    add(board, alice, 3)
    assert selectors.board_catch_up(board_id=board.pk, since=3) == {"type": "ops", "ops": []}


def test_tabs_too_far_behind_or_ahead_get_a_snapshot(board, alice):
    add(board, alice, selectors.CATCHUP_MAX + 2)
    version = selectors.CATCHUP_MAX + 2
    assert selectors.board_catch_up(board_id=board.pk, since=2)["type"] == "ops"
    for since in (0, 1, version + 1):  # 1 is CATCHUP_MAX + 1 behind; version + 1 is ahead
        frame = selectors.board_catch_up(board_id=board.pk, since=since)
        assert (frame["type"], frame["version"]) == ("snapshot", version), since


def test_a_tab_behind_the_pruned_log_gets_a_snapshot(board, alice, monkeypatch):
    monkeypatch.setattr(services, "OPS_KEPT", 3)
    add(board, alice, 6)
    assert selectors.board_catch_up(board_id=board.pk, since=1)["type"] == "snapshot"
    assert [op["version"] for op in selectors.board_catch_up(board_id=board.pk, since=4)["ops"]] \
        == [5, 6]  # fmt: skip


def test_the_largest_snapshot_and_catch_up_fit_in_one_websocket_message(board):
    """Every text at TEXT_MAX characters of 4 UTF-8 bytes, quotes and backslashes escaped,
    by a user with the longest username of such characters, with the longest op ids."""
    widest = ("𝄞" * (TEXT_MAX - 2)) + '"\\'
    user = make_user("𠀀" * 150)
    op_id = "x" * protocol.CLIENT_OP_ID_MAX
    cards = [
        services.card_create(
            board_id=board.pk, author=user, column="todo", text=widest, client_op_id=op_id
        )
        for _ in range(services.CARDS_MAX)
    ]
    for card in cards[: selectors.CATCHUP_MAX]:
        services.card_edit(
            board_id=board.pk, author=user, card_id=card["card"], text=widest, client_op_id=op_id
        )
    snapshot = selectors.board_catch_up(board_id=board.pk, since=None)
    since = services.CARDS_MAX
    catch_up = selectors.board_catch_up(board_id=board.pk, since=since)
    assert len(catch_up["ops"]) == selectors.CATCHUP_MAX
    for frame in (snapshot, catch_up):
        size = len(protocol.encode(frame).encode())
        assert size < MESSAGE_MAX
