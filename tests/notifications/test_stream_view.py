"""The checks /events/ makes before any stream starts (streaming itself is in e2e)."""

import pytest
from django.test import Client

from notifications.views.stream import BadEventId, parse_event_id

pytestmark = pytest.mark.django_db


def test_anonymous_gets_403_and_no_stream(client):
    response = client.get("/events/")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"


@pytest.mark.parametrize(
    "query",
    ["channel=user-{bob}", "channel=user-{bob}-read", "channel=announcements&channel=user-{bob}",
     "channel=group-1", "channel=user-{bob}%00", "channel=nonsense"],
)  # fmt: skip
def test_asking_for_someone_elses_channel_is_403(alice, bob, query):
    client = Client()
    client.force_login(alice)
    response = client.get("/events/?" + query.format(bob=bob.pk))
    assert response.status_code == 403
    assert response.json()["error"] == "permission denied"


@pytest.mark.parametrize(
    "header", ["garbage", "user-1", "user-1:abc", "user-1:-4", ":5", "user-1:1,,", "x" * 3000,
               "error", "user-1:99999999999999999999"],
)  # fmt: skip
def test_a_malformed_last_event_id_is_400(alice, header):
    client = Client()
    client.force_login(alice)
    response = client.get("/events/", HTTP_LAST_EVENT_ID=header)
    assert response.status_code == 400
    assert "Last-Event-ID" in response.json()["error"]


def test_parse_event_id():
    assert parse_event_id("user-1:5,announcements:0") == {"user-1": 5, "announcements": 0}
    assert parse_event_id("user%2D1:5") == {"user-1": 5}
    with pytest.raises(BadEventId):
        parse_event_id("user-1:5:6")
