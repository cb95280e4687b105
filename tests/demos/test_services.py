"""Board operations: versions in order, places clamped, stale moves deterministic, bad input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import ValidationError
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from demos import protocol, selectors, services
from demos.models import TEXT_MAX, Board, BoardOp, Card
from tests.support.replica import Replica, order

pytestmark = pytest.mark.django_db


@pytest.fixture
def board() -> Board:
    return services.board_ensure(slug="demo", title="Shared board")


def create(board: Board, user, text: str, column: str = "todo", **kw) -> dict:
    return services.card_create(board_id=board.pk, author=user, column=column, text=text, **kw)


def move(board: Board, user, card: int, column: str, index: int) -> dict:
    return services.card_move(
        board_id=board.pk, author=user, card_id=card, column=column, index=index
    )


def board_order(board: Board) -> dict[str, list[int]]:
    return order(selectors.board_snapshot(board_id=board.pk))


def texts(board: Board, column: str = "todo") -> list[str]:
    snapshot = selectors.board_snapshot(board_id=board.pk)
    return [c["text"] for c in next(c for c in snapshot["columns"] if c["id"] == column)["cards"]]


# ---------------------------------------------------------------- versions


def test_each_operation_gets_the_next_version_and_is_logged_as_sent(board, alice, bob):
    a = create(board, alice, "write tests", client_op_id="c-1")
    b = create(board, bob, "ship it", column="doing")
    e = services.card_edit(board_id=board.pk, author=bob, card_id=a["card"], text="write more")
    m = move(board, alice, a["card"], "done", 0)
    assert [op["version"] for op in (a, b, e, m)] == [1, 2, 3, 4]
    assert a == {
        "version": 1,
        "op": "create",
        "card": a["card"],
        "column": "todo",
        "index": 0,
        "text": "write tests",
        "by": "alice",
        "client_op_id": "c-1",
    }
    assert (e["op"], e["text"], e["by"]) == ("edit", "write more", "bob")
    assert (m["op"], m["column"], m["index"]) == ("move", "done", 0)
    board.refresh_from_db()
    assert board.version == 4
    logged = list(BoardOp.objects.filter(board=board).values_list("payload", flat=True))
    assert logged == [a, b, e, m]


def test_an_operation_is_published_only_when_its_transaction_commits(
    board, alice, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        create(board, alice, "one")
        move(board, alice, Card.objects.get().pk, "done", 0)
    assert len(callbacks) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_operations_get_distinct_gapless_versions(board, alice, bob):
    def burst(user) -> list[int]:
        try:
            return [create(board, user, f"{user.username} {i}")["version"] for i in range(5)]
        finally:
            connections.close_all()

    with ThreadPoolExecutor(max_workers=6) as pool:
        results = list(pool.map(burst, [alice, bob] * 3))
    versions = sorted(v for result in results for v in result)
    assert versions == list(range(1, 31))
    assert all(result == sorted(result) for result in results)
    logged = BoardOp.objects.order_by("version").values_list("version", "payload")
    assert all(version == payload["version"] for version, payload in logged)
    positions = Card.objects.order_by("position").values_list("position", flat=True)
    assert list(positions) == list(range(30))


def test_versions_stay_per_board(board, alice):
    other = services.board_ensure(slug="other", title="Other")
    create(board, alice, "a")
    assert create(other, alice, "b")["version"] == 1
    assert create(board, alice, "c")["version"] == 2


# ---------------------------------------------------------------- places


def test_create_appends_by_default_inserts_at_an_index_and_clamps_past_the_end(board, alice):
    create(board, alice, "b")
    create(board, alice, "c")
    assert create(board, alice, "a", index=0)["index"] == 0
    assert create(board, alice, "d", index=99)["index"] == 3
    assert texts(board) == ["a", "b", "c", "d"]


def test_moves_within_a_column_count_the_column_without_the_card(board, alice):
    ids = [create(board, alice, t)["card"] for t in "abcd"]
    assert move(board, alice, ids[0], "todo", 2)["index"] == 2  # after b and c
    assert texts(board) == ["b", "c", "a", "d"]
    assert move(board, alice, ids[3], "todo", 0)["index"] == 0
    assert texts(board) == ["d", "b", "c", "a"]
    assert move(board, alice, ids[1], "todo", 50)["index"] == 3  # clamped to the end
    assert texts(board) == ["d", "c", "a", "b"]


def test_a_move_between_columns_closes_one_gap_and_opens_one_place(board, alice):
    a, b, c = (create(board, alice, t)["card"] for t in "abc")
    x = create(board, alice, "x", column="doing")["card"]
    move(board, alice, b, "doing", 0)
    assert board_order(board) == {"todo": [a, c], "doing": [b, x], "done": []}
    positions = dict(Card.objects.values_list("pk", "position"))
    assert (positions[a], positions[c], positions[b], positions[x]) == (0, 1, 0, 1)


def test_stale_moves_apply_by_card_and_clamped_index_in_version_order(board, alice, bob):
    """alice and bob both saw version 4 (todo: a b c d, doing empty) and move at once."""
    a, b, c, d = (create(board, alice, t)["card"] for t in "abcd")
    # alice: d to the top of todo; bob, from the same view: a to index 3 (the end, then).
    first = move(board, alice, d, "todo", 0)
    second = move(board, bob, a, "todo", 3)
    assert (first["version"], second["version"]) == (5, 6)
    assert board_order(board)["todo"] == [d, b, c, a]
    # bob moved c to doing at 5 while alice's view had two cards there: clamped to 0.
    assert move(board, bob, c, "doing", 5)["index"] == 0
    assert board_order(board) == {"todo": [d, b, a], "doing": [c], "done": []}


def test_the_same_operations_in_the_same_order_give_the_same_board(alice, bob):
    """Deterministic: the outcome is a function of the operations and their order only."""
    outcomes = []
    for slug in ("one", "two"):
        board = services.board_ensure(slug=slug, title=slug)
        ids = [create(board, alice, t)["card"] for t in "abc"]
        move(board, alice, ids[2], "done", 0)
        move(board, bob, ids[0], "done", 9)
        move(board, alice, ids[1], "todo", 9)
        outcomes.append([[ids.index(i) for i in col] for col in board_order(board).values()])
    assert outcomes[0] == outcomes[1] == [[1], [], [2, 0]]


OPS = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.sampled_from(["todo", "doing", "done"]), st.integers(0, 8)),
        st.tuples(st.just("move"), st.sampled_from(["todo", "doing", "done"]), st.integers(0, 8)),
        st.tuples(st.just("edit"), st.just(""), st.integers(0, 8)),
    ),
    min_size=1,
    max_size=25,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=OPS, card_picks=st.lists(st.integers(0, 30), min_size=25, max_size=25))
def test_any_operations_replayed_in_version_order_rebuild_the_board(alice, ops, card_picks):
    board = Board.objects.create(slug=f"b{Board.objects.count()}", title="t")
    start = selectors.board_snapshot(board_id=board.pk)
    cards: list[int] = []
    for (kind, column, index), pick in zip(ops, card_picks, strict=False):
        if kind == "create" or not cards:
            cards.append(
                create(board, alice, f"card {len(cards)}", column=column or "todo", index=index)[
                    "card"
                ]
            )
        elif kind == "move":
            move(board, alice, cards[pick % len(cards)], column, index)
        else:
            services.card_edit(
                board_id=board.pk,
                author=alice,
                card_id=cards[pick % len(cards)],
                text=f"edit {pick}",
            )
    replica = Replica(start)
    for payload in BoardOp.objects.filter(board=board).values_list("payload", flat=True):
        replica.apply(payload)
    now = selectors.board_snapshot(board_id=board.pk)
    assert replica.version == now["version"]
    assert replica.columns == {c["id"]: c["cards"] for c in now["columns"]}
    # Positions stay dense: 0..n-1 in every column.
    for column, ids in replica.order().items():
        positions = Card.objects.filter(board=board, column=column).order_by("position")
        assert list(positions.values_list("position", flat=True)) == list(range(len(ids)))


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("column", "text", "message"),
    [
        ("later", "x", "column must be one of todo, doing, done"),
        ("todo", "   ", "text is empty"),
        ("todo", "x" * (TEXT_MAX + 1), f"text is longer than {TEXT_MAX} characters"),
        ("todo", "bell\x07", "text holds control characters"),
        ("todo", "nul\x00", "text holds control characters"),
        ("todo", "half \ud800 pair", "text holds characters that cannot be stored"),
    ],
)
def test_bad_cards_are_refused_with_a_reason_and_change_nothing(
    board, alice, column, text, message
):
    with pytest.raises(ValidationError) as refused:
        create(board, alice, text, column=column)
    assert (refused.value.code, refused.value.messages) == (protocol.INVALID, [message])
    board.refresh_from_db()
    assert (board.version, Card.objects.count(), BoardOp.objects.count()) == (0, 0, 0)


def test_text_is_trimmed_and_may_hold_newlines_and_any_script(board, alice):
    op = create(board, alice, "  line one\nzweite Zeile 🚀 \t")
    assert op["text"] == "line one\nzweite Zeile 🚀"
    assert len(create(board, alice, "é" * TEXT_MAX)["text"]) == TEXT_MAX


def test_unknown_cards_and_cards_of_other_boards_are_not_found(board, alice):
    other = services.board_ensure(slug="other", title="Other")
    foreign = create(other, alice, "theirs")["card"]
    for card_id in (foreign, 10**6):
        with pytest.raises(ValidationError) as refused:
            move(board, alice, card_id, "done", 0)
        assert refused.value.code == protocol.NOT_FOUND
        with pytest.raises(ValidationError) as refused:
            services.card_edit(board_id=board.pk, author=alice, card_id=card_id, text="mine")
        assert refused.value.code == protocol.NOT_FOUND
    board.refresh_from_db()
    assert board.version == 0
    assert Card.objects.get(pk=foreign).text == "theirs"


def test_a_negative_index_is_refused_not_clamped(board, alice):
    card = create(board, alice, "a")["card"]
    with pytest.raises(ValidationError) as refused:
        move(board, alice, card, "todo", -1)
    assert refused.value.code == protocol.INVALID


def test_a_full_board_refuses_new_cards_but_takes_moves(board, alice, monkeypatch):
    monkeypatch.setattr(services, "CARDS_MAX", 3)
    ids = [create(board, alice, t)["card"] for t in "abc"]
    with pytest.raises(ValidationError) as refused:
        create(board, alice, "d")
    assert refused.value.code == protocol.BOARD_FULL
    assert move(board, alice, ids[0], "done", 0)["version"] == 4


def test_a_gone_board_is_not_found(alice):
    with pytest.raises(ValidationError) as refused:
        services.card_create(board_id=404, author=alice, column="todo", text="x")
    assert refused.value.code == protocol.NOT_FOUND


def test_the_log_keeps_the_last_ops_kept_operations(board, alice, monkeypatch):
    monkeypatch.setattr(services, "OPS_KEPT", 5)
    card = create(board, alice, "a")["card"]
    for i in range(9):
        services.card_edit(board_id=board.pk, author=alice, card_id=card, text=f"v{i}")
    versions = list(BoardOp.objects.values_list("version", flat=True))
    assert versions == [6, 7, 8, 9, 10]
