"""Every state-changing endpoint refuses requests without a CSRF token, and staff-only
ones refuse non-staff users: 403, nothing written."""

import pytest
from django.contrib.auth.models import Permission
from django.test import Client

from feeds.models import Room
from notifications.models import Announcement, Notification, ReadChange
from notifications.services import notification_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def state(alice):
    n = notification_create(recipient=alice, title="unread")
    announcement = Announcement.objects.create(title="Hi", body="", level="info")
    return {"n": n, "announcement": announcement}


def write_endpoints(state) -> list[tuple[str, dict]]:
    return [
        (f"/api/notifications/{state['n'].pk}/read/", {}),
        ("/api/notifications/read-all/", {}),
        (f"/api/announcements/{state['announcement'].pk}/read/", {}),
        ("/chat/", {"title": "Sneaky room"}),
        ("/logout/", {}),
        (f"/admin/notifications/announcement/{state['announcement'].pk}/publish/", {}),
    ]


def test_no_write_endpoint_accepts_a_request_without_csrf(alice, state):
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    for path, data in write_endpoints(state):
        response = client.post(path, data)
        assert response.status_code == 403, path
    state["n"].refresh_from_db()
    assert state["n"].read_at is None
    assert not ReadChange.objects.exists()
    assert not Room.objects.filter(title="Sneaky room").exists()
    state["announcement"].refresh_from_db()
    assert state["announcement"].published_at is None
    # still logged in: the logout POST was refused too
    assert client.get("/api/notifications/unread-count/").status_code == 200


def test_a_non_staff_user_cannot_publish_even_with_the_permission_name_in_hand(bob, state):
    bob.user_permissions.add(Permission.objects.get(codename="publish_announcement"))
    client = Client()
    client.force_login(bob)  # not staff: the permission alone must not open the admin
    path = f"/admin/notifications/announcement/{state['announcement'].pk}/publish/"
    assert client.post(path).status_code in (302, 403)
    state["announcement"].refresh_from_db()
    assert state["announcement"].published_at is None


def test_anonymous_writes_are_refused_as_json(state):
    client = Client()
    for path in ("/api/notifications/read-all/", f"/api/notifications/{state['n'].pk}/read/"):
        response = client.post(path)
        assert response.status_code == 403
        assert response["Content-Type"] == "application/json"
    assert Notification.objects.filter(read_at__isnull=False).count() == 0
