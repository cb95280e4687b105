"""The chat pages and the room list API."""

from __future__ import annotations

import pytest
from django.test import Client

from feeds import presence, selectors
from feeds.models import Room
from realtime.redis_state import key, sync_client
from tests.support.factories import make_user, session_cookie

pytestmark = pytest.mark.django_db


@pytest.fixture
def rooms(alice, bob):
    general = Room.objects.create(slug="general", title="General")
    secret = Room.objects.create(slug="secret", title="Secret <b>plans</b>", is_private=True)
    secret.members.add(alice)
    Room.objects.create(slug="ops", title="Ops", is_private=True)
    return general, secret


def logged_in(user) -> Client:
    client = Client()
    client.cookies["sessionid"] = session_cookie(user)
    return client


def mark_online(room: Room, username: str, conn: str) -> None:
    """What a connected consumer leaves in Redis (see feeds.presence)."""
    client = sync_client()
    seconds, _ = client.time()
    client.zadd(key("presence", room.pk), {f"{username}|{conn}": seconds * 1000 + 60_000})


def test_the_room_list_shows_only_rooms_the_user_may_enter(rooms, alice, bob):
    page = logged_in(alice).get("/chat/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'href="/chat/general/"' in html and 'href="/chat/secret/"' in html
    assert "/chat/ops/" not in html
    assert "Secret &lt;b&gt;plans&lt;/b&gt;" in html  # escaped
    bobs = logged_in(bob).get("/chat/").content.decode()
    assert "/chat/general/" in bobs and "/chat/secret/" not in bobs


def test_anonymous_users_are_sent_to_log_in(rooms):
    for path in ("/chat/", "/chat/general/"):
        response = Client().get(path)
        assert response.status_code == 302 and response["Location"].startswith("/login/")
    api = Client().get("/api/chat/rooms/")
    assert api.status_code == 403 and api.json() == {"error": "authentication required"}


def test_a_room_page_is_404_for_unknown_and_forbidden_rooms_alike(rooms, bob):
    client = logged_in(bob)
    assert client.get("/chat/secret/").status_code == 404
    assert client.get("/chat/missing/").status_code == 404
    page = client.get("/chat/general/")
    assert page.status_code == 200
    assert b'data-ws-path="/ws/chat/general/"' in page.content


def test_the_api_counts_people_not_tabs(rooms, alice, bob):
    general, _ = rooms
    mark_online(general, "alice", "tab-1")
    mark_online(general, "alice", "tab-2")
    mark_online(general, "bob", "tab-1")
    data = logged_in(alice).get("/api/chat/rooms/").json()
    assert data == {
        "rooms": [
            {
                "slug": "general",
                "title": "General",
                "is_private": False,
                "direct": False,
                "online": 2,
                "unread": 0,
                "mentions": 0,
                "url": "/chat/general/",
            },
            {
                "slug": "secret",
                "title": "Secret <b>plans</b>",
                "is_private": True,
                "direct": False,
                "online": 0,
                "unread": 0,
                "mentions": 0,
                "url": "/chat/secret/",
            },
        ]
    }


def test_expired_connections_are_not_counted(rooms, alice):
    general, _ = rooms
    client = sync_client()
    client.zadd(key("presence", general.pk), {"ghost|gone": 1})
    assert presence.online_counts([general.pk]) == {general.pk: 0}


def test_creating_a_room_redirects_to_it_with_a_unique_slug(rooms, alice):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    client.get("/chat/")
    token = client.cookies["csrftoken"].value
    response = client.post("/chat/", {"title": "General", "csrfmiddlewaretoken": token})
    assert response.status_code == 302 and response["Location"] == "/chat/general-2/"
    room = Room.objects.get(slug="general-2")
    assert (room.title, room.is_private, room.created_by) == ("General", False, alice)


def test_a_blank_title_is_refused_with_a_message(rooms, alice):
    client = logged_in(alice)
    for data in ({"title": "   "}, {}):
        response = client.post("/chat/", data)
        assert response.status_code == 400
        assert b"This field is required." in response.content
    assert Room.objects.count() == 3


def test_creating_rooms_faster_than_a_person_would_is_refused_with_a_message(rooms, alice):
    from feeds.ratelimit import ROOMS_PER_WINDOW

    client = logged_in(alice)
    for i in range(ROOMS_PER_WINDOW):
        assert client.post("/chat/", {"title": f"Room {i}"}).status_code == 302
    response = client.post("/chat/", {"title": "One too many"})
    assert response.status_code == 400
    assert b"You have created 5 rooms in the last 10 minutes; try again later." in response.content
    assert not Room.objects.filter(title="One too many").exists()
    # the limit is per user
    assert logged_in(make_user("dora")).post("/chat/", {"title": "Dora's"}).status_code == 302


def test_a_title_over_the_maximum_length_is_refused_with_a_message(rooms, alice):
    response = logged_in(alice).post("/chat/", {"title": "x" * 101})
    assert response.status_code == 400
    assert b"Ensure this value has at most 100 characters (it has 101)." in response.content
    assert Room.objects.count() == 3


def test_a_room_added_in_the_admin_is_created_by_the_admin(rooms, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw-12345678")
    client = Client()
    client.force_login(admin)
    data = {"title": "Staff", "slug": "staff", "members": [], "is_private": ""}
    response = client.post("/admin/feeds/room/add/", data)
    assert response.status_code == 302, response.content[:2000]
    assert Room.objects.get(slug="staff").created_by == admin


def test_the_room_list_query_count_does_not_grow_with_rooms(
    rooms, alice, django_assert_num_queries
):
    for i in range(20):
        Room.objects.create(slug=f"r{i}", title=f"Room {i}")
    with django_assert_num_queries(2):  # the rooms, and the unread counts of all of them
        assert len(selectors.room_list(user=alice)) == 22


def test_the_room_limit_is_a_sliding_window_across_a_clock_boundary(rooms, alice, monkeypatch):
    """Rooms created just before and just after a multiple of the window count together."""
    import time

    from feeds.ratelimit import ROOM_WINDOW_SECONDS, ROOMS_PER_WINDOW

    boundary = (int(time.time()) // ROOM_WINDOW_SECONDS + 1) * ROOM_WINDOW_SECONDS
    client = logged_in(alice)
    clock = [boundary - 60.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    for i in range(ROOMS_PER_WINDOW):
        if i == 2:
            clock[0] = boundary + 60.0  # 2 minutes later, in the next clock-aligned window
        assert client.post("/chat/", {"title": f"Room {i}"}).status_code == 302
    response = client.post("/chat/", {"title": "One too many"})
    assert response.status_code == 400
    assert b"try again later" in response.content
    assert not Room.objects.filter(title="One too many").exists()
    clock[0] = boundary - 60.0 + ROOM_WINDOW_SECONDS + 1  # the first two have left the window
    for title in ("Allowed again", "And again"):
        assert client.post("/chat/", {"title": title}).status_code == 302
    assert client.post("/chat/", {"title": "Refused again"}).status_code == 400
