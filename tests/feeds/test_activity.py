"""The activity feed: what is recorded (public only), published after commit, paged, replayed."""
# ruff: noqa: F811 (the pubsub fixture is imported, then requested by name)

import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from feeds.models import Activity, Room
from notifications.services import announcement_create, announcement_publish
from notifications.storage import ReplayStorage
from tests.notifications.test_services import published, pubsub  # noqa: F401

pytestmark = pytest.mark.django_db


def activity_messages(ps) -> list[dict]:
    return [json.loads(m["d"]) for m in published(ps) if m["c"] == "activity"]


def test_a_public_room_appears_in_the_feed_after_commit(
    alice, pubsub, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        room = Room.objects.create(slug="design", title="Design", created_by=alice)
    assert activity_messages(pubsub) == []  # not before commit
    for callback in callbacks:
        callback()
    (item,) = activity_messages(pubsub)
    activity = Activity.objects.get()
    assert item == {
        "id": activity.pk,
        "verb": "created the room",
        "actor": "alice",
        "target": "Design",
        "url": f"/chat/{room.slug}/",
        "created_at": activity.created_at.isoformat(),
    }


def test_a_private_room_never_appears(alice, pubsub, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        room = Room.objects.create(slug="secret", title="Secret plans", is_private=True)
        room.title = "Still secret"
        room.save()
    assert not Activity.objects.exists()
    assert activity_messages(pubsub) == []


def test_a_room_made_private_or_deleted_leaves_the_feed(alice):
    room = Room.objects.create(slug="was-public", title="Was public", created_by=alice)
    other = Room.objects.create(slug="other", title="Other")
    room.is_private = True
    room.save()
    assert list(Activity.objects.values_list("target", flat=True)) == ["Other"]
    other.delete()
    assert not Activity.objects.exists()


def test_announcements_to_everyone_are_feed_items_but_group_ones_are_not(alice):
    ops = Group.objects.create(name="ops")
    for title, groups in (("Maintenance", []), ("Ops only", [ops])):
        announcement_publish(announcement=announcement_create(title=title, groups=groups), by=alice)
    item = Activity.objects.get()
    assert (item.verb, item.actor, item.target, item.url) == (
        "announced", alice, "Maintenance", "/notifications/"
    )  # fmt: skip


def test_feed_api_pages_newest_first(alice, alice_client):
    rooms = [Room.objects.create(slug=f"r{i}", title=f"Room {i}") for i in range(5)]
    ids = list(Activity.objects.order_by("-id").values_list("id", flat=True))
    page = alice_client.get("/api/feed/?limit=2").json()
    assert [r["id"] for r in page["results"]] == ids[:2]
    assert page["next"] == ids[1]
    rest = alice_client.get(f"/api/feed/?limit=10&before={page['next']}").json()
    assert [r["target"] for r in rest["results"]] == [r.title for r in reversed(rooms[:3])]
    assert rest["next"] is None


@pytest.mark.parametrize("query", ["limit=0", "limit=101", "before=x", "before=-3"])
def test_feed_api_rejects_bad_parameters(alice_client, query):
    response = alice_client.get(f"/api/feed/?{query}")
    assert response.status_code == 400
    assert response.json()["error"]


def test_feed_needs_a_login(client):
    assert client.get("/api/feed/").status_code == 403
    response = client.get("/feed/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]


def test_feed_page_lists_items_and_streams_the_activity_channel(alice, alice_client):
    Room.objects.create(slug="lobby", title="Lobby <b>", created_by=alice)
    page = alice_client.get("/feed/").content.decode()
    assert "Lobby &lt;b&gt;" in page
    channels = f"user-{alice.pk} user-{alice.pk}-read announcements activity"
    assert f'data-stream-channels="{channels}"' in page
    assert f"activity:{Activity.objects.get().pk}" in page  # the stream starts after this item


def test_activity_replay_serves_items_after_an_id(alice):
    Room.objects.create(slug="a", title="A")
    Room.objects.create(slug="b", title="B")
    Room.objects.create(slug="c", title="C")
    storage = ReplayStorage()
    after_first = Activity.objects.get(target="A").pk
    events = storage.get_events("activity", after_first)
    assert [json.loads(e.data)["target"] for e in events] == ["B", "C"]
    assert all(e.type == "activity" for e in events)
    assert storage.get_current_id("activity") == Activity.objects.get(target="C").pk


def test_bob_can_read_the_feed_too(bob):
    client = Client()
    client.force_login(bob)
    assert client.get("/feed/").status_code == 200
