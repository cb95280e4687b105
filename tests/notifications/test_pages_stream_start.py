"""The stream position a page embeds (`data-stream-start`): the reader's channels only."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from notifications.services import notification_create

pytestmark = pytest.mark.django_db

PAGES = ["/notifications/", "/chat/", "/feed/"]


def stream_start(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    match = re.search(r'<body[^>]* data-stream-start="([^"]*)"', response.content.decode())
    assert match, "no data-stream-start on <body>"
    return match[1]


@pytest.fixture
def bob_client(alice, bob) -> Client:
    for i in range(3):
        notification_create(recipient=alice, title=f"private {i}")
    client = Client()
    client.force_login(bob)
    return client


@pytest.mark.parametrize("page", PAGES)
@pytest.mark.parametrize(
    "query",
    ["channel=user-{alice}", "channel=user-{alice}-read",
     "channel=announcements&channel=user-{alice}", "channel=group-1"],
)  # fmt: skip
def test_bob_never_sees_alices_stream_positions_on_a_page(alice, bob_client, page, query):
    default = stream_start(bob_client, page)
    asked = stream_start(bob_client, f"{page}?{query.format(alice=alice.pk)}")
    assert f"user-{alice.pk}" not in asked
    assert asked == default  # a refused list renders the page with the reader's own channels


@pytest.mark.parametrize("page", PAGES)
def test_a_page_asking_for_hundreds_of_channels_costs_no_more_than_a_plain_one(
    bob, bob_client, page, django_assert_max_num_queries
):
    with CaptureQueriesContext(connection) as plain:
        default = stream_start(bob_client, page)
    many = "&".join(f"channel=group-{900 + i}" for i in range(800))
    with django_assert_max_num_queries(len(plain.captured_queries)):
        assert stream_start(bob_client, f"{page}?{many}") == default


def test_a_page_may_name_channels_the_stream_would_allow(bob, bob_client):
    start = stream_start(bob_client, f"/notifications/?channel=user-{bob.pk}&channel=activity")
    assert [part.split(":")[0] for part in start.split(",")] == [f"user-{bob.pk}", "activity"]
