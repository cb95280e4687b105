"""A client's copy of a board, kept the way static/demos/board.js keeps it: a snapshot,
then operations applied in version order."""

from __future__ import annotations

from typing import Any


class Replica:
    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.version = snapshot["version"]
        self.columns = {c["id"]: [dict(card) for card in c["cards"]] for c in snapshot["columns"]}

    def apply(self, op: dict[str, Any]) -> None:
        assert op["version"] == self.version + 1, (op["version"], self.version)
        if op["op"] == "create":
            card = {"id": op["card"], "text": op["text"], "by": op["by"]}
            self._insert(op["column"], op["index"], card)
        elif op["op"] == "edit":
            self._find(op["card"])["text"] = op["text"]
        elif op["op"] == "move":
            card = self._find(op["card"])
            for cards in self.columns.values():
                if card in cards:
                    cards.remove(card)
            self._insert(op["column"], op["index"], card)
        self.version = op["version"]

    def _insert(self, column: str, index: int, card: dict[str, Any]) -> None:
        cards = self.columns[column]
        cards.insert(min(index, len(cards)), card)

    def _find(self, card_id: int) -> dict[str, Any]:
        return next(c for cards in self.columns.values() for c in cards if c["id"] == card_id)

    def order(self) -> dict[str, list[int]]:
        return {column: [c["id"] for c in cards] for column, cards in self.columns.items()}


def order(snapshot: dict[str, Any]) -> dict[str, list[int]]:
    """Card ids per column of a `snapshot` frame."""
    return {c["id"]: [card["id"] for card in c["cards"]] for c in snapshot["columns"]}
