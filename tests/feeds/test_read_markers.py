"""Read markers and unread counts per room: the rules, the one query, the `read` frame."""

from __future__ import annotations

from functools import partial

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from feeds import selectors, services
from feeds.models import Message, ReadMarker, Room
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


def say(room: Room, author, content: str = "hi") -> int:
    return services.message_post(room=room, author=author, content=content)[0]["id"]


@pytest.fixture
def general(alice) -> Room:
    return Room.objects.create(slug="general", title="General", created_by=alice)


def test_unread_counts_follow_the_marker_and_skip_own_messages_and_tombstones(general, alice, bob):
    services.read_marker_open(room=general, user=bob)
    say(general, bob, "mine")
    first = say(general, alice, "one")
    say(general, alice, "hey @bob")
    gone = say(general, alice, "oops")
    services.message_delete(room=general, actor=alice, message_id=gone)
    assert selectors.unread_counts(user=bob) == {general.pk: (2, 1)}
    assert services.read_marker_move(room=general, user=bob, message_id=first) == first
    assert selectors.unread_counts(user=bob) == {general.pk: (1, 1)}
    # Never backwards, never past the newest message.
    assert services.read_marker_move(room=general, user=bob, message_id=first - 1) is None
    assert services.read_marker_move(room=general, user=bob, message_id=10**12) == gone
    assert selectors.unread_counts(user=bob) == {}


def test_a_public_room_never_opened_has_no_unread_and_a_first_visit_reads_it_all(general, bob):
    alice = general.created_by
    say(general, alice)
    assert selectors.unread_counts(user=bob) == {}
    newest = say(general, alice)
    assert services.read_marker_open(room=general, user=bob) == newest
    say(general, alice)
    assert selectors.unread_counts(user=bob) == {general.pk: (1, 0)}


def test_joining_a_private_room_starts_the_marker_and_leaving_hides_its_count(alice, bob):
    room = services.room_create(title="Club", created_by=alice, is_private=True)
    say(room, alice, "before bob")
    room.members.add(bob)
    say(room, alice, "after bob")
    assert selectors.unread_counts(user=bob) == {room.pk: (1, 0)}
    room.members.remove(bob)
    assert selectors.unread_counts(user=bob) == {}


def test_unread_counts_of_200_rooms_are_one_query(alice, bob, django_assert_num_queries):
    rooms = Room.objects.bulk_create(
        Room(slug=f"r{i}", title=f"R{i}", is_private=i % 2 == 0) for i in range(200)
    )
    Room.members.through.objects.bulk_create(
        Room.members.through(room_id=room.pk, user_id=bob.pk) for room in rooms[::2]
    )
    ReadMarker.objects.bulk_create(ReadMarker(user=bob, room=room) for room in rooms)
    Message.objects.bulk_create(
        Message(room=room, author=alice, content="@bob hi" if i % 3 else "hi")
        for i, room in enumerate(rooms)
        for _ in range(2)
    )
    # Another user's markers in the same rooms must not mix into bob's counts.
    carol = make_user("carol")
    ReadMarker.objects.bulk_create(ReadMarker(user=carol, room=room) for room in rooms)
    with django_assert_num_queries(1):
        counts = selectors.unread_counts(user=bob)
    assert len(counts) == 200
    assert counts[rooms[1].pk] == (2, 2) and counts[rooms[0].pk] == (2, 0)


def test_the_unread_query_ranges_the_message_index_from_the_users_markers(bob):
    # The plan quoted in selectors.unread_counts (PostgreSQL), checked on whichever
    # database runs the tests: each room's unread messages are a range of (room, id).
    with CaptureQueriesContext(connection) as queries:
        selectors.unread_counts(user=bob)
    explain = "EXPLAIN QUERY PLAN" if connection.vendor == "sqlite" else "EXPLAIN"
    with connection.cursor() as cursor:
        cursor.execute(f"{explain} {queries.captured_queries[0]['sql']}")
        plan = " ".join(str(row) for row in cursor.fetchall())
    assert "message_room_id" in plan, plan


def test_the_room_list_api_and_page_show_unread_counts_and_mentions(general, alice, bob):
    services.read_marker_open(room=general, user=bob)
    say(general, alice, "@bob look")
    say(general, alice, "and this")
    client = Client()
    client.force_login(bob)
    room = client.get("/api/chat/rooms/").json()["rooms"][0]
    assert (room["unread"], room["mentions"]) == (2, 1)
    page = client.get("/chat/").content.decode()
    assert 'class="unread-badge mention"' in page and "@1 · 2" in page


def test_the_room_page_opens_at_the_users_marker(general, alice, bob):
    first = say(general, alice)
    client = Client()
    client.force_login(bob)
    assert f'data-last-read="{first}"' in client.get("/chat/general/").content.decode()
    say(general, alice)
    assert f'data-last-read="{first}"' in client.get("/chat/general/").content.decode()


def test_a_tab_without_a_socket_moves_its_marker_over_http(general, alice, bob):
    services.read_marker_open(room=general, user=bob)
    newest = say(general, alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(bob)
    client.get("/chat/general/")  # sets the CSRF cookie
    token = {"HTTP_X_CSRFTOKEN": client.cookies["csrftoken"].value}
    post = partial(client.post, content_type="application/json")
    here = "/api/chat/rooms/general/read/"
    response = post(here, data={"id": newest}, **token)
    assert response.status_code == 200 and response.json() == {"read": newest}
    assert selectors.unread_counts(user=bob) == {}
    assert post(here, data={"id": "x"}, **token).status_code == 400
    assert post(here, data={"id": newest}).status_code == 403  # no CSRF token
    assert client.get(here).status_code == 405
    assert post("/api/chat/rooms/nope/read/", data={"id": 1}, **token).status_code == 404
