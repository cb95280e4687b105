import pytest

from notifications.models import Notification
from notifications.services import notification_create
from tests.support.http import csrf_post

pytestmark = pytest.mark.django_db


def test_list_is_newest_first_with_unread_count_and_cursor(alice, alice_client):
    ns = [notification_create(recipient=alice, title=f"n{i}") for i in range(5)]
    body = alice_client.get("/api/notifications/?limit=2").json()
    assert [r["id"] for r in body["results"]] == [ns[4].pk, ns[3].pk]
    assert body["unread"] == 5
    assert body["next"] == ns[3].pk
    page2 = alice_client.get(f"/api/notifications/?limit=2&before={body['next']}").json()
    assert [r["id"] for r in page2["results"]] == [ns[2].pk, ns[1].pk]
    last = alice_client.get(f"/api/notifications/?limit=2&before={ns[1].pk}").json()
    assert [r["id"] for r in last["results"]] == [ns[0].pk]
    assert last["next"] is None


def test_list_item_format(alice, alice_client):
    n = notification_create(recipient=alice, title="t", body="b", level="warning", url="/x/")
    (item,) = alice_client.get("/api/notifications/").json()["results"]
    assert item == {
        "id": n.pk, "title": "t", "body": "b", "kind": "general", "level": "warning", "url": "/x/",
        "created_at": n.created_at.isoformat(), "read": False, "seen": False, "archived": False,
    }  # fmt: skip


def test_unread_filter(alice, alice_client):
    a = notification_create(recipient=alice, title="a")
    notification_create(recipient=alice, title="b")
    Notification.objects.filter(pk=a.pk).update(read_at="2026-01-01T00:00:00Z")
    body = alice_client.get("/api/notifications/?unread=1").json()
    assert [r["title"] for r in body["results"]] == ["b"]


@pytest.mark.parametrize(
    "query", ["limit=0", "limit=101", "limit=abc", "before=-1", "before=x", "unread=maybe"]
)
def test_bad_parameters_get_400_with_a_message(alice_client, query):
    response = alice_client.get(f"/api/notifications/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]


def test_anonymous_gets_403_json_everywhere(client):
    for path in ("/api/notifications/", "/api/notifications/unread-count/"):
        response = client.get(path)
        assert response.status_code == 403
        assert response.json() == {"error": "authentication required"}


def test_unread_count(alice, alice_client):
    a = notification_create(recipient=alice, title="a")
    assert alice_client.get("/api/notifications/unread-count/").json() == {
        "unread": 1,
        "unseen": 1,
        "newest": a.pk,
    }


def test_mark_read_and_read_all(alice, alice_client):
    a = notification_create(recipient=alice, title="a")
    b = notification_create(recipient=alice, title="b")
    response = csrf_post(alice_client, f"/api/notifications/{a.pk}/read/")
    assert response.status_code == 200
    assert response.json() == {"unread": 1, "unseen": 1, "newest": b.pk}
    read_all = csrf_post(alice_client, "/api/notifications/read-all/").json()
    assert read_all == {"unread": 0, "unseen": 0, "newest": b.pk}


def test_another_users_notification_is_404(bob, alice_client):
    theirs = notification_create(recipient=bob, title="private")
    response = csrf_post(alice_client, f"/api/notifications/{theirs.pk}/read/")
    assert response.status_code == 404
    assert response.json() == {"error": "no such notification"}
    theirs.refresh_from_db()
    assert theirs.read_at is None


def test_writes_without_csrf_are_refused_as_json(alice, alice_client):
    a = notification_create(recipient=alice, title="a")
    response = alice_client.post(f"/api/notifications/{a.pk}/read/")
    assert response.status_code == 403
    assert "CSRF" in response.json()["error"]
    a.refresh_from_db()
    assert a.read_at is None


def test_list_query_count_is_constant(alice, alice_client, django_assert_max_num_queries):
    for i in range(30):
        notification_create(recipient=alice, title=str(i))
    with django_assert_max_num_queries(4):  # session, user, page, count
        alice_client.get("/api/notifications/?limit=30")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("post", "/api/notifications/", "GET"),
        ("delete", "/api/notifications/unread-count/", "GET"),
        ("get", "/api/notifications/read-all/", "POST"),
        ("get", "/api/notifications/1/read/", "POST"),
        ("get", "/api/announcements/1/read/", "POST"),
        ("post", "/events/", "GET"),
        ("post", "/api/feed/", "GET"),
        ("post", "/api/chat/rooms/", "GET"),
    ],
)
def test_wrong_method_gets_405_json_with_allow(alice_client, method, path, allow):
    alice_client.handler.enforce_csrf_checks = False
    response = getattr(alice_client, method)(path)
    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response["Allow"] == allow
    assert "not allowed" in response.json()["error"]


@pytest.mark.parametrize(
    "path",
    ["/api/notifications/abc/read/", "/api/nothing-here/", "/api/notifications/1/unknown/"],
)
def test_unknown_api_paths_get_404_json(alice_client, client, path):
    for c in (alice_client, client):
        response = c.get(path)
        assert response.status_code == 404
        assert response.json() == {"error": "not found"}


def test_unknown_events_path_gets_404_json(alice_client):
    response = alice_client.get("/events/nope/")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_server_error_under_api_is_json(alice_client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("notifications.selectors.badge_count", broken)
    alice_client.raise_request_exception = False
    response = alice_client.get("/api/notifications/unread-count/")
    assert response.status_code == 500
    assert response.json() == {"error": "server error"}


def test_csrf_failure_on_the_api_is_json(alice_client):
    response = alice_client.post("/api/notifications/read-all/")
    assert response.status_code == 403
    assert response.json()["error"].startswith("CSRF check failed")


@pytest.mark.parametrize("path", ["/api/notifications/read-all/", "/api/announcements/1/read/"])
def test_an_oversized_body_under_api_gets_400_json(alice_client, settings, path):
    alice_client.get("/notifications/")
    token = alice_client.cookies["csrftoken"].value
    body = "x=" + "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = alice_client.post(
        path, body, content_type="application/x-www-form-urlencoded", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert "too large" in response.json()["error"]


def test_too_many_query_parameters_under_api_get_400_json(alice_client, settings):
    query = "&".join(f"p{i}=1" for i in range(settings.DATA_UPLOAD_MAX_NUMBER_FIELDS + 1))
    response = alice_client.get(f"/api/notifications/?{query}")
    assert response.status_code == 400
    assert response.json() == {"error": "bad request"}


def test_an_oversized_form_on_a_page_still_gets_the_sites_400_page(alice_client, settings):
    alice_client.get("/chat/")
    token = alice_client.cookies["csrftoken"].value
    body = "title=" + "a" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)
    response = alice_client.post(
        "/chat/", body, content_type="application/x-www-form-urlencoded", HTTP_X_CSRFTOKEN=token
    )
    assert response.status_code == 400
    assert response["Content-Type"].startswith("text/html")
