"""Inbox states (seen, read, archived, unread, deleted) and collapse, through the services,
the JSON API and the replay log."""

import json

import pytest
from django.contrib.auth.models import Group

from notifications.models import Notification, ReadChange
from notifications.services import (
    notification_archive,
    notification_create,
    notification_delete,
    notification_mark_read,
    notification_mark_unread,
    notification_unarchive,
    notifications_mark_seen,
    notifications_send_batch,
)
from notifications.storage import ReplayStorage
from tests.support.http import csrf_post, csrf_token
from tests.support.published import published

pytestmark = pytest.mark.django_db


def titles(client, query: str = "") -> list[str]:
    return [r["title"] for r in client.get(f"/api/notifications/{query}").json()["results"]]


def test_opening_the_bell_clears_the_badge_but_not_the_unread_count(alice, alice_client):
    notification_create(recipient=alice, title="a")
    b = notification_create(recipient=alice, title="b")
    assert csrf_post(alice_client, "/api/notifications/seen/").json() == {
        "unread": 2,
        "unseen": 0,
        "newest": b.pk,
    }
    c = notification_create(recipient=alice, title="c")
    count = alice_client.get("/api/notifications/unread-count/").json()
    assert count == {"unread": 3, "unseen": 1, "newest": c.pk}
    assert titles(alice_client, "?state=unseen") == ["c"]
    assert titles(alice_client, "?state=unread") == ["c", "b", "a"]


def test_the_bell_sees_only_through_the_newest_row_it_showed(alice, alice_client):
    shown = notification_create(recipient=alice, title="shown")
    arrived = notification_create(recipient=alice, title="arrived while the request was on its way")
    answer = csrf_post(alice_client, f"/api/notifications/seen/?through={shown.pk}")
    assert answer.json() == {"unread": 2, "unseen": 1, "newest": arrived.pk}
    assert titles(alice_client, "?state=unseen") == ["arrived while the request was on its way"]


@pytest.mark.parametrize("through", ["", "-1", "1.5", "x", "\u0661"])
def test_a_through_that_is_not_an_id_is_400_and_sees_nothing(alice, alice_client, through):
    notification_create(recipient=alice, title="a")
    answer = csrf_post(alice_client, f"/api/notifications/seen/?through={through}")
    assert answer.status_code == 400
    assert answer.json()["error"] == "through must be a notification id"
    assert alice_client.get("/api/notifications/unread-count/").json()["unseen"] == 1


def test_each_state_filters_the_list(alice, alice_client):
    read, unread, archived = (notification_create(recipient=alice, title=t) for t in "rua")
    notification_mark_read(user=alice, notification_id=read.pk)
    notification_archive(user=alice, notification_id=archived.pk)
    assert titles(alice_client) == ["u", "r"]  # the inbox: everything not archived
    assert titles(alice_client, "?state=unread") == ["u"]
    assert titles(alice_client, "?state=read") == ["r"]
    assert titles(alice_client, "?state=archived") == ["a"]
    (item,) = alice_client.get("/api/notifications/?state=archived").json()["results"]
    assert item["archived"] and item["read"] and item["seen"]
    assert unread.pk


def test_archiving_reads_it_and_marking_unread_brings_it_back(alice, alice_client):
    n = notification_create(recipient=alice, title="n")
    assert notification_archive(user=alice, notification_id=n.pk) == {
        "unread": 0,
        "unseen": 0,
        "newest": n.pk,
    }
    assert notification_mark_unread(user=alice, notification_id=n.pk) == {
        "unread": 1,
        "unseen": 1,
        "newest": n.pk,
    }
    n.refresh_from_db()
    assert n.read_at is None and n.archived_at is None


def test_unarchive_moves_it_back_to_the_inbox_still_read(alice):
    n = notification_create(recipient=alice, title="n")
    notification_archive(user=alice, notification_id=n.pk)
    notification_unarchive(user=alice, notification_id=n.pk)
    n.refresh_from_db()
    assert n.archived_at is None and n.read_at is not None


def test_each_action_is_published_as_its_own_event_after_commit(
    alice, pubsub, django_capture_on_commit_callbacks
):
    n = notification_create(recipient=alice, title="n")
    published(pubsub)
    with django_capture_on_commit_callbacks(execute=True):
        notifications_mark_seen(user=alice)
        notification_archive(user=alice, notification_id=n.pk)
        notification_unarchive(user=alice, notification_id=n.pk)
        notification_mark_unread(user=alice, notification_id=n.pk)
        notification_delete(user=alice, notification_id=n.pk)
    messages = published(pubsub)
    assert {m["channel"] for m in messages} == {f"user-{alice.pk}-read"}
    sent = [(m["event"], json.loads(m["data"])) for m in messages]
    # archiving an unread one also says `read`, deleting an unread one too (older clients)
    assert [event for event, _ in sent] == [
        "seen", "read", "archived", "unarchived", "unread", "deleted", "read",
    ]  # fmt: skip
    # counts are read when published (here: after all of them)
    # `newest`: 0 once it was deleted
    assert sent[0][1] == {"unread": 0, "unseen": 0, "newest": 0}  # `seen` has no ids
    assert all(
        data == {"ids": [n.pk], "unread": 0, "unseen": 0, "newest": 0} for _, data in sent[1:]
    )


def test_a_reconnecting_tab_gets_the_changes_replayed_by_type(alice):
    n = notification_create(recipient=alice, title="n")
    notification_archive(user=alice, notification_id=n.pk)
    notification_delete(user=alice, notification_id=n.pk)
    events = ReplayStorage().get_events(f"user-{alice.pk}-read", 0)
    assert [e.type for e in events] == ["read", "archived", "deleted"]
    assert json.loads(events[-1].data) == {"ids": [n.pk], "unread": 0, "unseen": 0, "newest": 0}


def test_seeing_nothing_new_publishes_nothing(alice):
    notification_create(recipient=alice, title="n")
    notifications_mark_seen(user=alice)
    notifications_mark_seen(user=alice)
    assert list(ReadChange.objects.values_list("action", flat=True)) == ["seen"]


@pytest.mark.parametrize("action", ["unread", "archive", "unarchive"])
def test_another_users_notification_is_404_and_unchanged(alice, bob, alice_client, action):
    bobs = notification_create(recipient=bob, title="bob's")
    response = csrf_post(alice_client, f"/api/notifications/{bobs.pk}/{action}/")
    assert response.status_code == 404
    assert response.json() == {"error": "no such notification"}
    assert not ReadChange.objects.exists()


def test_deleting_another_users_notification_is_404(alice, bob, alice_client):
    bobs = notification_create(recipient=bob, title="bob's")
    response = alice_client.delete(
        f"/api/notifications/{bobs.pk}/", HTTP_X_CSRFTOKEN=csrf_token(alice_client)
    )
    assert response.status_code == 404
    assert Notification.objects.filter(pk=bobs.pk).exists()


def test_delete_through_the_api(alice, alice_client):
    n = notification_create(recipient=alice, title="n")
    response = alice_client.delete(
        f"/api/notifications/{n.pk}/", HTTP_X_CSRFTOKEN=csrf_token(alice_client)
    )
    assert response.json() == {"unread": 0, "unseen": 0, "newest": 0}
    assert not Notification.objects.exists()


@pytest.mark.parametrize(
    "path", ["/api/notifications/seen/", "/api/notifications/1/archive/", "/api/notifications/1/"]
)
def test_writes_need_the_csrf_token(alice, alice_client, path):
    notification_create(recipient=alice, title="n")
    response = alice_client.generic("DELETE" if path.endswith("1/") else "POST", path)
    assert response.status_code == 403
    assert response.json()["error"].startswith("CSRF check failed")


@pytest.mark.parametrize("state", ["new", "UNREAD", "", "archived;drop"])
def test_an_unknown_state_is_400_with_the_known_ones(alice_client, state):
    response = alice_client.get(f"/api/notifications/?state={state}")
    assert response.status_code == 400
    assert "unseen, unread, read, archived" in response.json()["error"]


def test_get_on_an_action_is_405(alice, alice_client):
    n = notification_create(recipient=alice, title="n")
    assert alice_client.get(f"/api/notifications/{n.pk}/archive/").status_code == 405
    assert alice_client.get(f"/api/notifications/{n.pk}/").status_code == 405


# ---------------------------------------------------------------- collapse


def reply(recipient, actor, target):
    return notification_create(
        recipient=recipient,
        kind="general",
        title=f"{actor.username} replied to your comment",
        actor=actor,
        target=target,
    )


def test_repeats_on_one_target_collapse_into_one_row(alice, bob, charlie, alice_client):
    post = Group.objects.create(name="post")
    first = reply(alice, bob, post)
    reply(alice, charlie, post)
    last = reply(alice, bob, post)
    (row,) = Notification.objects.all()
    assert row.pk == last.pk
    assert row.replaces_id not in (None, first.pk)  # the second, which replaced the first
    assert row.title == "bob and 1 other replied to your comment"
    body = alice_client.get("/api/notifications/").json()
    (item,) = body["results"]
    assert (item["count"], item["others"]) == (3, 1)
    assert body["unread"] == body["unseen"] == 1  # the badge counts it once


def test_a_collapse_is_one_live_event_that_names_the_row_it_replaces(
    alice, bob, charlie, pubsub, django_capture_on_commit_callbacks
):
    post = Group.objects.create(name="post")
    first = reply(alice, bob, post)
    published(pubsub)
    with django_capture_on_commit_callbacks(execute=True):
        second = reply(alice, charlie, post)
    notifications = [m for m in published(pubsub) if m["event"] == "notification"]
    (event,) = notifications
    data = json.loads(event["data"])
    assert data["id"] == second.pk
    assert (data["replaces"], data["count"], data["others"], data["unread"]) == (
        first.pk,
        2,
        1,
        1,
    )
    assert data["title"] == "charlie and 1 other replied to your comment"


def test_read_ones_other_targets_and_bulk_sends_do_not_collapse(alice, bob):
    post, other = Group.objects.create(name="post"), Group.objects.create(name="other")
    first = reply(alice, bob, post)
    notification_mark_read(user=alice, notification_id=first.pk)
    reply(alice, bob, post)
    reply(alice, bob, other)
    notifications_send_batch(recipient_ids=[alice.pk], title="x", target=post)
    notifications_send_batch(recipient_ids=[alice.pk], title="x", target=post)
    assert Notification.objects.count() == 5
    assert set(Notification.objects.values_list("collapse_count", flat=True)) == {1}


def test_collapsing_is_off_with_a_zero_window(alice, bob, settings):
    settings.NOTIFICATION_COLLAPSE_SECONDS = 0
    post = Group.objects.create(name="post")
    reply(alice, bob, post)
    reply(alice, bob, post)
    assert Notification.objects.count() == 2
