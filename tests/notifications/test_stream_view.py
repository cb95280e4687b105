"""The checks /events/ and /api/notifications/poll/ make before any stream or poll starts
(streaming and polling themselves are in e2e)."""

from urllib.parse import quote

import pytest
from django.test import Client

from notifications.views.stream import BadEventId, parse_event_id
from tests.support.http import csrf_post

pytestmark = pytest.mark.django_db

# Every way to read the stream: the same checks, the same JSON errors.
each_endpoint = pytest.mark.parametrize("path", ["/events/", "/api/notifications/poll/?wait=0"])


@each_endpoint
def test_anonymous_gets_403_and_no_stream(client, path):
    response = client.get(path)
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "authentication required"}


@pytest.mark.parametrize(
    "query",
    ["channel=user-{bob}", "channel=user-{bob}-read", "channel=announcements&channel=user-{bob}",
     "channel=group-1", "channel=user-{bob}%00", "channel=nonsense"],
)  # fmt: skip
@each_endpoint
def test_asking_for_someone_elses_channel_is_403(alice, bob, query, path):
    client = Client()
    client.force_login(alice)
    separator = "&" if "?" in path else "?"
    response = client.get(path + separator + query.format(bob=bob.pk))
    assert response.status_code == 403
    assert response.json()["error"] == "permission denied"


@pytest.mark.parametrize(
    "header", ["garbage", "user-1", "user-1:abc", "user-1:-4", ":5", "user-1:1,,", "x" * 3000,
               "error", "user-1:99999999999999999999"],
)  # fmt: skip
@pytest.mark.parametrize(
    ("path", "name"),
    [("/events/", "Last-Event-ID"), ("/events/?lastEventId=", "Last-Event-ID"),
     ("/api/notifications/poll/?wait=0&cursor=", "cursor")],
)  # fmt: skip
def test_a_malformed_last_event_id_is_400(alice, header, path, name):
    client = Client()
    client.force_login(alice)
    if path.endswith("="):
        response = client.get(path + quote(header))
    else:
        response = client.get(path, HTTP_LAST_EVENT_ID=header)
    assert response.status_code == 400
    assert name in response.json()["error"]


@pytest.mark.parametrize("wait", ["", "-1", "26", "25.0001", "nan", "inf", "1e1", "5s", "0x10"])
def test_a_poll_with_a_bad_wait_is_400(alice, wait):
    client = Client()
    client.force_login(alice)
    response = client.get("/api/notifications/poll/", {"wait": wait})
    assert response.status_code == 400
    assert response.json() == {"error": "wait must be seconds from 0 to 25"}


def test_a_poll_is_get_only_and_a_post_without_csrf_is_refused_as_json(alice_client):
    response = alice_client.post("/api/notifications/poll/")
    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "error" in response.json()
    response = csrf_post(alice_client, "/api/notifications/poll/")
    assert response.status_code == 405
    assert response["Allow"] == "GET"
    assert response.json() == {"error": "method POST not allowed"}


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
