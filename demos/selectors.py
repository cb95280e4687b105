"""Reads of the shared board: plain data, ready for the wire (demos.protocol)."""

from __future__ import annotations

from typing import Any

from django.db import transaction

from demos import protocol
from demos.models import Board, BoardOp, Card

# A tab further behind than this many operations gets a snapshot instead (as cheap to
# read). With texts and usernames of at most 4 bytes a character, CATCHUP_MAX operations
# stay under daphne's 64 KiB message cap (tests/demos/test_selectors.py: the worst case).
CATCHUP_MAX = 30


def board_by_slug(*, slug: str) -> Board | None:
    return Board.objects.filter(slug=slug).first()


def board_snapshot(*, board_id: int) -> dict[str, Any]:
    """The whole board at one version, as a `snapshot` frame."""
    # Under the board's lock no operation commits between reading the version and the
    # cards (demos.services takes the same lock to write).
    with transaction.atomic():
        board = Board.objects.select_for_update().get(pk=board_id)
        rows = Card.objects.filter(board_id=board_id).order_by("column", "position")
        cards: dict[str, list[dict[str, Any]]] = {}
        for card in rows.values("id", "column", "text", "created_by__username"):
            cards.setdefault(card["column"], []).append(
                {"id": card["id"], "text": card["text"], "by": card["created_by__username"]}
            )
    return protocol.snapshot(board=board.slug, version=board.version, cards=cards)


def board_catch_up(*, board_id: int, since: int | None) -> dict[str, Any]:
    """What a tab holding version `since` needs: the operations after it, in version
    order, or a snapshot when it holds nothing, is too far behind or is ahead."""
    if since is None:
        return board_snapshot(board_id=board_id)
    version = Board.objects.values_list("version", flat=True).get(pk=board_id)
    if since > version or version - since > CATCHUP_MAX:
        return board_snapshot(board_id=board_id)
    # Versions commit in order (one lock per board), so the log after `since` has no holes;
    # it may have grown since `version` was read, which only adds operations.
    payloads = list(
        BoardOp.objects.filter(board_id=board_id, version__gt=since)
        .order_by("version")
        .values_list("payload", flat=True)[:CATCHUP_MAX]
    )
    expected = list(range(since + 1, since + 1 + len(payloads)))
    if [p["version"] for p in payloads] != expected or len(payloads) < version - since:
        return board_snapshot(board_id=board_id)  # pruned from the log meanwhile
    return protocol.ops(payloads)
