"""Changes to a user made outside their session (groups, deletion, the admin) reach their
open streams and sockets on a real daphne and Redis."""

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group
from django.test import Client
from django.utils import timezone

from feeds.models import Room
from notifications.models import Notification
from notifications.services import announcement_create, announcement_publish
from tests.support.chat_ws import close_code, joined
from tests.support.factories import make_user, session_cookie
from tests.support.sse_client import ended, open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

cookie_for = sync_to_async(session_cookie)


def announce(title: str, group: Group) -> None:
    announcement = announcement_create(title=title, groups=[group])
    announcement_publish(announcement=announcement)


def remove_with_user_groups_remove(user, group: Group) -> None:
    user.groups.remove(group)


def remove_with_group_user_set_remove(user, group: Group) -> None:
    group.user_set.remove(user)


def remove_with_group_user_set_clear(user, group: Group) -> None:
    group.user_set.clear()


def remove_with_user_groups_clear(user, group: Group) -> None:
    user.groups.clear()


@pytest.mark.parametrize(
    "remove",
    [
        remove_with_user_groups_remove,
        remove_with_group_user_set_remove,
        remove_with_group_user_set_clear,
        remove_with_user_groups_clear,
    ],
)
async def test_a_user_removed_from_a_group_stops_getting_its_announcements(server, bob, remove):
    ops = await Group.objects.acreate(name="ops")
    await bob.groups.aadd(ops)
    cookie = await cookie_for(bob)
    stream = await open_stream(server.url, session=cookie)
    try:
        await sync_to_async(announce)("Before", ops)
        (before,) = await stream.collect("announcement", 1)
        assert before.json()["title"] == "Before"

        await sync_to_async(remove)(bob, ops)
        assert await ended(stream) == "channels-changed"  # the client reconnects
        await stream.close()
        stream = await open_stream(server.url, session=cookie, last_event_id=stream.last_id)
        await sync_to_async(announce)("After", ops)
        assert [e.event for e in await stream.quiet(1.0)] == []
    finally:
        await stream.close()


async def test_a_user_added_to_a_group_gets_its_announcements_after_the_reconnect(server, bob):
    ops = await Group.objects.acreate(name="ops")
    cookie = await cookie_for(bob)
    stream = await open_stream(server.url, session=cookie)
    try:
        await ops.user_set.aadd(bob)
        assert await ended(stream) == "channels-changed"
        await stream.close()
        stream = await open_stream(server.url, session=cookie)
        await sync_to_async(announce)("Welcome to ops", ops)
        (event,) = await stream.collect("announcement", 1)
        assert event.json()["title"] == "Welcome to ops"
    finally:
        await stream.close()


async def test_deleting_a_user_closes_their_streams_and_chat_sockets(server, alice, bob):
    await Room.objects.acreate(slug="general", title="General")
    alices_stream = await open_stream(server.url, session=await cookie_for(alice))
    bobs_stream = await open_stream(server.url, session=await cookie_for(bob))
    ws, _ = await joined(server, "general", alice)
    try:
        await alice.adelete()
        assert await ended(alices_stream) == "session-ended"
        assert await close_code(ws, timeout=2) == 4001
        assert [e.event for e in await bobs_stream.quiet(0.5)] == []  # bob is untouched
    finally:
        await alices_stream.close()
        await bobs_stream.close()
        await ws.close()


def staff_client() -> Client:
    client = Client()
    client.force_login(make_user("admin", is_staff=True, is_superuser=True))
    return client


def admin_edit_read_at(client: Client, notification: Notification, read_at: str) -> None:
    date, _, time = read_at.partition(" ")
    response = client.post(
        f"/admin/notifications/notification/{notification.pk}/change/",
        {
            "recipient": notification.recipient_id,
            "title": notification.title,
            "body": notification.body,
            "kind": notification.kind,
            "level": notification.level,
            "url": "",
            "actor": "",
            "target_type": "",
            "target_id": "",
            "read_at_0": date,
            "read_at_1": time,
        },
    )
    assert response.status_code == 302, response.content.decode()[-2000:]


def admin_delete(client: Client, *notifications: Notification) -> None:
    response = client.post(
        "/admin/notifications/notification/",
        {
            "action": "delete_selected",
            "post": "yes",
            "_selected_action": [n.pk for n in notifications],
        },
    )
    assert response.status_code == 302


async def test_admin_edits_and_deletes_update_the_recipients_badge(server, alice, bob):
    first, second, third = [
        await Notification.objects.acreate(recipient=alice, title=f"n{i}") for i in range(3)
    ]
    bobs = await Notification.objects.acreate(recipient=bob, title="bob's")
    client = await sync_to_async(staff_client)()
    stream = await open_stream(server.url, session=await cookie_for(alice))
    try:
        now = timezone.localtime().strftime("%Y-%m-%d %H:%M:%S")
        await sync_to_async(admin_edit_read_at)(client, first, now)
        (read,) = await stream.collect("read", 1)
        assert read.json() == {"ids": [first.pk], "unread": 2, "unseen": 2, "newest": third.pk}

        await sync_to_async(admin_edit_read_at)(client, first, "")  # unread again
        (read,) = await stream.collect("read", 1)
        assert read.json() == {"ids": [], "unread": 3, "unseen": 3, "newest": third.pk}

        # one event for the whole delete, with the unread ones it removed
        await sync_to_async(admin_delete)(client, second, third, bobs)
        (read,) = await stream.collect("read", 1)
        assert read.json() == {
            "ids": sorted([second.pk, third.pk]),
            "unread": 1,
            "unseen": 1,
            "newest": first.pk,  # the newer ones were deleted
        }
        assert [e.event for e in await stream.quiet(0.5)] == []
    finally:
        await stream.close()


async def test_mark_all_read_still_publishes_one_read_event(server, alice):
    for i in range(3):
        await Notification.objects.acreate(recipient=alice, title=f"n{i}")
    client = Client()
    await sync_to_async(client.force_login)(alice)
    stream = await open_stream(server.url, session=await cookie_for(alice))
    try:
        response = await sync_to_async(client.post)("/api/notifications/read-all/")
        assert response.status_code in (200, 204), response.content
        (read,) = await stream.collect("read", 1)
        assert read.json()["unread"] == 0
        assert [e.event for e in await stream.quiet(0.5)] == []
    finally:
        await stream.close()
