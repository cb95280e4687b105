"""Changes to a shared board: each one is an operation with the board's next version.

How concurrent edits resolve (docs/demos.md): operations on a board are serialized by a
lock on its row, and each gets the next version. An operation names a card by id and a
place by column and index, never by what the client last saw, so one based on a stale
version still applies: the index counts the target column as it is when the operation
applies, without the moved card, and is clamped to its end. Edits replace the text, the
later version winning. Every tab applies the same operations in version order and so
shows the same board. Refusals raise ValidationError with a code from demos.protocol.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F

from demos import events, protocol
from demos.models import TEXT_MAX, Board, BoardOp, Card, Column

# Cards per board: the snapshot of a full board stays under daphne's 64 KiB message cap
# (tests/demos/test_selectors.py checks the worst case).
CARDS_MAX = 40
# Operations kept per board: far more than selectors.CATCHUP_MAX, which is all a
# reconnecting tab is ever sent before it gets a snapshot instead.
OPS_KEPT = 500
# Control characters other than tab and newline: nothing a person types into a card.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def board_ensure(*, slug: str, title: str) -> Board:
    """The board called `slug`, created on first use."""
    board, _ = Board.objects.get_or_create(slug=slug, defaults={"title": title})
    return board


def card_create(
    *,
    board_id: int,
    author: Any,
    column: str,
    text: str,
    index: int | None = None,
    client_op_id: str = "",
) -> dict[str, Any]:
    """Add a card at `index` of `column` (its end when None or past it); return the op."""
    column, text = _checked_column(column), _checked_text(text)

    def change(board: Board) -> dict[str, Any]:
        if Card.objects.filter(board=board).count() >= CARDS_MAX:
            raise ValidationError(f"the board holds {CARDS_MAX} cards", code=protocol.BOARD_FULL)
        place = _clamped(board, column, index)
        _shift(board, column, from_position=place, by=1)
        card = Card.objects.create(
            board=board, column=column, position=place, text=text, created_by=author
        )
        return {"card": card.pk, "column": column, "index": place, "text": text}

    return _apply(board_id, author, "create", client_op_id, change)


def card_edit(
    *, board_id: int, author: Any, card_id: int, text: str, client_op_id: str = ""
) -> dict[str, Any]:
    """Replace a card's text; return the op."""
    text = _checked_text(text)

    def change(board: Board) -> dict[str, Any]:
        updated = Card.objects.filter(board=board, pk=card_id).update(text=text)
        if not updated:
            raise _no_card(card_id)
        return {"card": card_id, "text": text}

    return _apply(board_id, author, "edit", client_op_id, change)


def card_move(
    *, board_id: int, author: Any, card_id: int, column: str, index: int, client_op_id: str = ""
) -> dict[str, Any]:
    """Move a card to `index` of `column`, counted without the card and clamped to the
    column's end; return the op with the index it landed at."""
    column = _checked_column(column)
    if index < 0:
        raise ValidationError("index must not be negative", code=protocol.INVALID)

    def change(board: Board) -> dict[str, Any]:
        card = Card.objects.filter(board=board, pk=card_id).first()
        if card is None:
            raise _no_card(card_id)
        _shift(board, card.column, from_position=card.position + 1, by=-1)
        place = _clamped(board, column, index, without=card.pk)
        _shift(board, column, from_position=place, by=1, without=card.pk)
        Card.objects.filter(pk=card.pk).update(column=column, position=place)
        return {"card": card_id, "column": column, "index": place}

    return _apply(board_id, author, "move", client_op_id, change)


def _apply(
    board_id: int,
    author: Any,
    kind: str,
    client_op_id: str,
    change: Callable[[Board], dict[str, Any]],
) -> dict[str, Any]:
    """Run `change` as the board's next version, log it and publish it after commit."""
    with transaction.atomic():
        board = Board.objects.select_for_update().filter(pk=board_id).first()
        if board is None:
            raise ValidationError("this board is gone", code=protocol.NOT_FOUND)
        version = board.version + 1
        fields = change(board)
        payload = protocol.op(
            version, kind, by=author.get_username(), client_op_id=client_op_id, **fields
        )
        BoardOp.objects.create(board=board, version=version, payload=payload, author=author)
        Board.objects.filter(pk=board.pk).update(version=version)
        BoardOp.objects.filter(board=board, version__lte=version - OPS_KEPT).delete()
        events.op_broadcast_on_commit(board_id=board.pk, op=payload)
    return payload


def _checked_column(column: str) -> str:
    if column not in Column.values:
        names = ", ".join(Column.values)
        raise ValidationError(f"column must be one of {names}", code=protocol.INVALID)
    return column


def _checked_text(text: str) -> str:
    """The text trimmed, or ValidationError: empty, too long or not storable."""
    text = text.strip()
    if not text:
        raise ValidationError("text is empty", code=protocol.INVALID)
    if len(text) > TEXT_MAX:
        raise ValidationError(f"text is longer than {TEXT_MAX} characters", code=protocol.INVALID)
    try:
        text.encode("utf-8")  # a lone surrogate is valid JSON, but no column stores it
    except UnicodeEncodeError:
        raise ValidationError(
            "text holds characters that cannot be stored", code=protocol.INVALID
        ) from None
    if _CONTROL.search(text):
        raise ValidationError("text holds control characters", code=protocol.INVALID)
    return text


def _column_cards(board: Board, column: str, without: int | None) -> Any:
    cards = Card.objects.filter(board=board, column=column)
    return cards if without is None else cards.exclude(pk=without)


def _clamped(board: Board, column: str, index: int | None, *, without: int | None = None) -> int:
    size = _column_cards(board, column, without).count()
    return size if index is None else min(index, size)


def _shift(
    board: Board, column: str, *, from_position: int, by: int, without: int | None = None
) -> None:
    """Move the cards of `column` at `from_position` and after by `by` places."""
    cards = _column_cards(board, column, without).filter(position__gte=from_position)
    cards.update(position=F("position") + by)


def _no_card(card_id: int) -> ValidationError:
    return ValidationError(f"card {card_id} is not on this board", code=protocol.NOT_FOUND)
