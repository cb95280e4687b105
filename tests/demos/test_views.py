"""The board page: signed-in users only, the finished page shell, no inline code."""

from __future__ import annotations

import pytest

from demos.models import Board

pytestmark = pytest.mark.django_db


def test_anonymous_visitors_are_sent_to_log_in(client):
    response = client.get("/demos/board/")
    assert (response.status_code, response["Location"]) == (302, "/login/?next=/demos/board/")
    assert not Board.objects.exists()


def test_the_page_creates_the_board_once_and_links_its_socket(alice_client):
    for _ in range(2):
        response = alice_client.get("/demos/board/")
        assert response.status_code == 200
    board = Board.objects.get()
    html = response.content.decode()
    assert 'data-ws-path="/ws/demos/board/demo/"' in html
    assert all(f'data-column="{c}"' in html for c in ("todo", "doing", "done"))
    assert '<a href="/demos/board/" class="active">Board</a>' in html
    assert (board.slug, board.version) == ("demo", 0)


def test_the_nav_links_the_board_from_other_pages(alice_client):
    assert (
        '<a href="/demos/board/" class="">Board</a>'
        in alice_client.get("/notifications/").content.decode()
    )


def test_the_page_only_answers_get(client, alice):
    client.force_login(alice)
    assert client.post("/demos/board/").status_code == 405
