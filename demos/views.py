"""The shared board page; the board itself arrives over its WebSocket (demos.consumers)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from demos import access, services
from demos.models import TEXT_MAX, Column

# The one board the demo page shows; a board is a row, so more could follow.
BOARD_SLUG = "demo"
BOARD_TITLE = "Shared board"


@login_required
@require_GET
def board_page(request: HttpRequest) -> HttpResponse:
    board = services.board_ensure(slug=BOARD_SLUG, title=BOARD_TITLE)
    if not access.can_use_board(user=request.user, board=board):
        raise PermissionDenied("no access to this board")
    context = {"board": board, "columns": Column.choices, "text_max": TEXT_MAX}
    return render(request, "demos/board.html", context)
