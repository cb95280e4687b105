"""Who may use a shared board: the one place the rule lives (default deny).

Every board is shared by all signed-in, active users; anyone else (anonymous, an
inactive account, no user at all) is refused, on the page and on the WebSocket alike.
"""

from __future__ import annotations

from typing import Any

from demos.models import Board


def can_use_board(*, user: Any, board: Board | None) -> bool:
    """Whether `user` may see and edit `board`."""
    if board is None or user is None:
        return False
    return bool(user.is_authenticated and user.is_active)
