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


def test_a_member_of_many_groups_gets_their_stream_and_the_feeds(alice, rf):
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
    # /feed/ names all of them plus `activity`: a long list of one's own channels is fine
    feed_page = client.get("/feed/")
    assert feed_page.status_code == 200
    own = feed_page.context["stream_channels"].split()
    assert len(own) == 19
    response = client.get("/events/?" + "&".join(f"channel={c}" for c in own))
    assert response.status_code == 200
    assert response["Content-Type"] == "text/event-stream"
    # what a client adds to its own channels is capped before any access check
    foreign = "&".join(f"channel=group-{900 + i}" for i in range(11))
    response = client.get(f"/events/?channel=user-{alice.pk}&{foreign}")
    assert response.status_code == 400
    assert "at most 10 channels" in response.json()["error"]


def test_the_stream_never_grants_another_origin_cors_access(alice, settings):
    # django-eventstream would add these from its own settings; Pulse's stream is same-origin.
    settings.EVENTSTREAM_ALLOW_ORIGIN = "*"
    settings.EVENTSTREAM_ALLOW_CREDENTIALS = True
    client = Client()
    client.force_login(alice)
    response = client.get("/events/", HTTP_ORIGIN="http://127.0.0.1:9999")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response
    assert "Access-Control-Allow-Credentials" not in response
    assert (response["Cache-Control"], response["X-Accel-Buffering"]) == ("no-cache", "no")
    response.close()
