"""Announcements and bulk sends over a real daphne, Redis, separate processes and Chromium."""

import asyncio
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone
from playwright.async_api import expect

from feeds.models import Activity
from notifications.models import Announcement, Notification
from notifications.services import announcement_create, announcement_publish
from tests.support.browser import chromium
from tests.support.factories import PASSWORD, make_user, session_cookie
from tests.support.servers import run_manage
from tests.support.sse_client import open_stream

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
]

cookie_for = sync_to_async(session_cookie)


async def test_send_notifications_in_its_own_process_reaches_a_connected_client(
    server, redis_server, alice, bob
):
    stream = await open_stream(server.url, session=await cookie_for(alice))
    try:
        result = await asyncio.to_thread(
            run_manage,
            "send_notifications", "--title", "Deploy finished", "--level", "success",
            "--users", "alice,bob", "--key", "deploy-42",
            redis_url=redis_server.url,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "sent 2 notifications to 2 users" in result.stdout
        (event,) = await stream.collect("notification", 1, timeout=10)
        assert (event.json()["title"], event.json()["level"], event.json()["unread"]) == (
            "Deploy finished", "success", 1
        )  # fmt: skip
    finally:
        await stream.close()


async def test_bad_input_exits_non_zero_with_a_message_and_writes_nothing(server, redis_server):
    result = await asyncio.to_thread(
        run_manage,
        "send_notifications", "--title", "x", "--users", "ghost,phantom",
        redis_url=redis_server.url,
    )  # fmt: skip
    assert result.returncode == 1
    assert "unknown usernames: ghost, phantom" in result.stderr
    assert result.stdout == ""
    assert not await Notification.objects.aexists()


async def test_a_scheduled_announcement_reaches_its_groups_members_and_only_them(
    server, redis_server, alice, bob
):
    ops = await Group.objects.acreate(name="ops")
    await bob.groups.aadd(ops)
    soon = timezone.now() - timedelta(seconds=1)
    scheduled = await sync_to_async(announcement_create)(
        title="Ops: failover drill", groups=[ops], publish_at=soon, created_by=alice
    )
    bobs = await open_stream(server.url, session=await cookie_for(bob))
    alices = await open_stream(server.url, session=await cookie_for(alice))
    try:
        result = await asyncio.to_thread(
            run_manage, "publish_due_announcements", redis_url=redis_server.url
        )
        assert result.returncode == 0, result.stderr
        (event,) = await bobs.collect("announcement", 1, timeout=10)
        assert event.json()["id"] == scheduled.pk
        assert event.id.split(",").count(f"group-{ops.pk}:1") == 1

        # alice is not in ops: the first announcement she gets is the next one to everyone
        later = await sync_to_async(announcement_create)(title="All hands")
        await sync_to_async(announcement_publish)(announcement=later, by=alice)
        (first,) = await alices.collect("announcement", 1, timeout=10)
        assert first.json()["title"] == "All hands"
    finally:
        await bobs.close()
        await alices.close()


async def test_a_client_that_was_away_gets_the_announcement_replayed(server, alice):
    cookie = await cookie_for(alice)
    stream = await open_stream(server.url, session=cookie)
    last_id = stream.last_id
    await stream.close()
    announcement = await sync_to_async(announcement_create)(title="While you were away")
    await sync_to_async(announcement_publish)(announcement=announcement, by=alice)
    again = await open_stream(server.url, session=cookie, last_event_id=last_id)
    try:
        (event,) = await again.collect("announcement", 1)
        assert event.json()["title"] == "While you were away"
    finally:
        await again.close()


def make_publisher():
    publisher = make_user("publisher", is_staff=True)
    codenames = ("view_announcement", "add_announcement", "change_announcement")
    perms = Permission.objects.filter(codename__in=(*codenames, "publish_announcement"))
    publisher.user_permissions.add(*perms)
    return publisher


@pytest.mark.browser
@pytest.mark.slow
async def test_staff_publish_from_the_admin_reaches_other_users_live(server, bob, charlie):
    await sync_to_async(make_publisher)()
    bobs_stream = await open_stream(server.url, session=await cookie_for(bob))
    try:
        async with chromium() as browser:
            bobs_page = await (await browser.new_context()).new_page()
            await bobs_page.context.add_cookies(
                [{"name": "sessionid", "value": await cookie_for(bob), "url": server.url}]
            )
            await bobs_page.goto(f"{server.url}/notifications/")
            await expect(bobs_page.locator("#conn-state")).to_have_attribute("data-state", "open")

            admin = await (await browser.new_context()).new_page()
            await admin.goto(f"{server.url}/admin/login/")
            await admin.fill("#id_username", "publisher")
            await admin.fill("#id_password", PASSWORD)
            await admin.click("input[type=submit]")
            await admin.wait_for_url(f"{server.url}/admin/")

            await admin.goto(f"{server.url}/admin/notifications/announcement/add/")
            await admin.fill("#id_title", "Maintenance tonight")
            await admin.fill("#id_body", "22:00-22:30 UTC, chat may drop.")
            await admin.select_option("#id_level", "warning")
            await admin.click("input[name=_save]")
            await expect(admin.locator(".messagelist")).to_contain_text("was added successfully")

            await admin.locator("input.action-select").first.check()
            await admin.select_option("select[name=action]", "publish_now")
            await admin.click("button[name=index]")
            await expect(admin.locator(".messagelist")).to_contain_text(
                "“Maintenance tonight” published."
            )
            await expect(admin.locator("#result_list")).to_contain_text("published")

            (event,) = await bobs_stream.collect("announcement", 1, timeout=5)
            assert event.json()["title"] == "Maintenance tonight"

            banner = bobs_page.locator("#announcement-banner .announcement")
            await expect(banner).to_contain_text("Maintenance tonight")
            await expect(banner).to_have_class("announcement level-warning")
            await expect(bobs_page.locator("#bell-badge")).to_have_text("1")
            await expect(bobs_page.locator("#inbox-announcements")).to_contain_text(
                "Maintenance tonight"
            )

            # someone who opens the site later still sees it, until they dismiss it
            later = await (await browser.new_context()).new_page()
            await later.context.add_cookies(
                [{"name": "sessionid", "value": await cookie_for(charlie), "url": server.url}]
            )
            await later.goto(f"{server.url}/notifications/")
            late_banner = later.locator("#announcement-banner .announcement")
            await expect(late_banner).to_contain_text("Maintenance tonight")
            await expect(later.locator("#bell-badge")).to_have_text("1")
            await late_banner.locator(".announcement-dismiss").click()
            await expect(late_banner).to_have_count(0)
            await expect(later.locator("#bell-badge")).to_be_hidden()

        announcement = await Announcement.objects.select_related("published_by").aget()
        assert announcement.published_by.username == "publisher"
    finally:
        await bobs_stream.close()


async def test_deleting_a_published_announcement_reaches_open_pages_and_the_feed(
    server, alice, bob
):
    publisher = await sync_to_async(make_publisher)()
    await sync_to_async(publisher.user_permissions.add)(
        *await sync_to_async(list)(Permission.objects.filter(codename="delete_announcement"))
    )
    announcement = await sync_to_async(announcement_create)(title="Oops", created_by=publisher)
    await sync_to_async(announcement_publish)(announcement=announcement, by=publisher)
    cookie = await sync_to_async(session_cookie)(bob)
    inbox = await open_stream(server.url, session=cookie)
    feed = await open_stream(server.url, session=cookie, params={"channel": "activity"})
    try:
        items = await sync_to_async(list)(
            Activity.objects.filter(target="Oops").values_list("id", flat=True)
        )
        assert len(items) == 1
        client = Client()
        await sync_to_async(client.force_login)(publisher)
        response = await sync_to_async(client.post)(
            f"/admin/notifications/announcement/{announcement.pk}/delete/", {"post": "yes"}
        )
        assert response.status_code == 302
        (expired,) = await inbox.collect("announcement-expired", 1, timeout=5)
        assert expired.json() == {"id": announcement.pk}
        (removed,) = await feed.collect("activity-removed", 1, timeout=5)
        assert removed.json() == {"ids": items}
        assert not await sync_to_async(Activity.objects.filter(target="Oops").exists)()
    finally:
        await inbox.close()
        await feed.close()
