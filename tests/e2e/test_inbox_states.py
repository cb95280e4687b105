"""Inbox state changes made through one server process reach the user's streams on another,
live and on replay, over real daphne processes and Redis."""

import httpx
import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group

from notifications.services import notification_create
from tests.support.factories import cookie_for
from tests.support.sse_client import open_stream
from tests.support.transports import each_transport, open_feed

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

create = sync_to_async(notification_create)


async def inbox_client(server, user) -> httpx.AsyncClient:
    """An HTTP client logged in as `user` with the CSRF cookie the inbox page sets."""
    client = httpx.AsyncClient(
        base_url=server.url, cookies={"sessionid": await cookie_for(user)}, timeout=10
    )
    assert (await client.get("/notifications/")).status_code == 200
    return client


async def post(client: httpx.AsyncClient, path: str, method: str = "POST") -> httpx.Response:
    return await client.request(method, path, headers={"X-CSRFToken": client.cookies["csrftoken"]})


@each_transport
async def test_an_archive_on_one_process_reaches_a_tab_on_another(
    transport, server, second_server, alice
):
    n = await create(recipient=alice, title="archive me")
    kept = await create(recipient=alice, title="keep me")
    tab = await open_feed(transport, second_server.url, session=await cookie_for(alice))
    client = await inbox_client(server, alice)
    try:
        response = await post(client, f"/api/notifications/{n.pk}/archive/")
        assert response.json() == {"unread": 1, "unseen": 1, "newest": kept.pk}
        (archived,) = await tab.collect("archived", 1)
        assert archived.json() == {"ids": [n.pk], "unread": 1, "unseen": 1, "newest": kept.pk}

        assert (await post(client, "/api/notifications/seen/")).json()["unseen"] == 0
        (seen,) = await tab.collect("seen", 1)
        assert seen.json() == {"unread": 1, "unseen": 0, "newest": kept.pk}

        await post(client, f"/api/notifications/{n.pk}/", method="DELETE")
        (deleted,) = await tab.collect("deleted", 1)
        assert deleted.json()["ids"] == [n.pk]
    finally:
        await tab.close()
        await client.aclose()


async def test_a_tab_that_was_away_gets_the_changes_replayed(server, second_server, alice):
    n = await create(recipient=alice, title="n")
    tab = await open_stream(second_server.url, session=await cookie_for(alice))
    away_from = tab.last_id
    await tab.close()
    client = await inbox_client(server, alice)
    try:
        await post(client, f"/api/notifications/{n.pk}/archive/")
        await post(client, f"/api/notifications/{n.pk}/unread/")
    finally:
        await client.aclose()
    newer = await create(recipient=alice, title="newer")
    tab = await open_stream(
        second_server.url, session=await cookie_for(alice), last_event_id=away_from
    )
    try:
        (archived,) = await tab.collect("archived", 1)  # in the order they happened
        (unread,) = await tab.collect("unread", 1)
        assert archived.json()["ids"] == unread.json()["ids"] == [n.pk]
        # counts of now, as live ones carry them
        assert unread.json() == {"ids": [n.pk], "unread": 2, "unseen": 2, "newest": newer.pk}
    finally:
        await tab.close()


async def test_a_collapse_reaches_the_tab_as_one_row_replacing_the_other(
    second_server, alice, bob, charlie
):
    post_ = await Group.objects.acreate(name="post")
    first = await create(recipient=alice, title="bob replied", actor=bob, target=post_)
    tab = await open_stream(second_server.url, session=await cookie_for(alice))
    try:
        await create(recipient=alice, title="charlie replied", actor=charlie, target=post_)
        (event,) = await tab.collect("notification", 1)
        data = event.json()
        assert data["replaces"] == first.pk
        assert data["title"] == "charlie and 1 other replied"
        assert (data["count"], data["unread"], data["unseen"]) == (2, 1, 1)
    finally:
        await tab.close()
