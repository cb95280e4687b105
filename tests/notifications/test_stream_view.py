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


def test_a_member_of_many_groups_still_gets_their_default_stream(alice, rf):
    from django.contrib.auth.models import Group

    from notifications.channels import requested_channels

    for i in range(15):
        alice.groups.add(Group.objects.create(name=f"team-{i}"))
    request = rf.get("/events/")
    request.user = alice
    # the server's own list is never capped: own, own-read, announcements, 15 groups
    assert len(requested_channels(request)) == 18
    client = Client()
    client.force_login(alice)
    asked = "&".join(f"channel=group-{g.pk}" for g in alice.groups.all()[:11])
    response = client.get(f"/events/?{asked}")
    assert response.status_code == 400
    assert "at most 10 channels" in response.json()["error"]
