"""The activity feed: what is recorded (public only), published after commit, paged, replayed."""

import json

import pytest
from django.contrib.auth.models import Group
from django.test import Client

from feeds import activity_selectors
from feeds.models import Activity, Room
from notifications.services import announcement_create, announcement_publish
from notifications.storage import ReplayStorage
from tests.support.factories import make_user
from tests.support.published import published

pytestmark = pytest.mark.django_db

ROOM_VERBS = ("created the room", "opened the room")


def activity_messages(ps, event_type: str = "activity") -> list[dict]:
    return [
        json.loads(m["data"])
        for m in published(ps)
        if m["channel"] == "activity" and m["event"] == event_type
    ]


def room_items() -> list[Activity]:
    """Feed items about rooms (the named users' own "joined Pulse" items left out)."""
    return list(Activity.objects.filter(verb__in=ROOM_VERBS).order_by("id"))


def test_a_public_room_appears_in_the_feed_after_commit(
    alice, pubsub, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        room = Room.objects.create(slug="design", title="Design", created_by=alice)
    assert activity_messages(pubsub) == []  # not before commit
    for callback in callbacks:
        callback()
    (item,) = activity_messages(pubsub)
    (activity,) = room_items()
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
        room.delete()
    assert not Activity.objects.exclude(verb="joined Pulse").exists()
    assert published(pubsub) == []


def test_a_room_made_private_or_deleted_leaves_the_feed(alice):
    room = Room.objects.create(slug="was-public", title="Was public", created_by=alice)
    other = Room.objects.create(slug="other", title="Other")
    room.is_private = True
    room.save()
    assert [a.target for a in room_items()] == ["Other"]
    other.delete()
    assert room_items() == []


def test_announcements_to_everyone_are_feed_items_but_group_ones_are_not(alice):
    ops = Group.objects.create(name="ops")
    for title, groups in (("Maintenance", []), ("Ops only", [ops])):
        announcement_publish(announcement=announcement_create(title=title, groups=groups), by=alice)
    item = Activity.objects.get(verb="announced")
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
    targets = [r["target"] for r in rest["results"]]
    assert targets == [*(r.title for r in reversed(rooms[:3])), ""]  # "", alice joined
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
    assert f"activity:{room_items()[0].pk}" in page  # the stream starts after this item


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


def test_a_room_made_private_streams_activity_removed_with_its_item_ids(
    alice, pubsub, django_capture_on_commit_callbacks
):
    room = Room.objects.create(slug="plans", title="Plans", created_by=alice)
    (item,) = room_items()
    with django_capture_on_commit_callbacks(execute=True):
        room.is_private = True
        room.save()
    tombstone = Activity.objects.get(verb=Activity.REMOVED)
    (message,) = [m for m in published(pubsub) if m["channel"] == "activity"]
    assert (message["event"], json.loads(message["data"]), message["id"]) == (
        "activity-removed", {"ids": [item.pk]}, tombstone.pk
    )  # fmt: skip
    assert not Activity.objects.filter(target="Plans").exists()  # nothing of it is kept


def test_a_deleted_room_streams_activity_removed_and_a_private_one_nothing(
    alice, pubsub, django_capture_on_commit_callbacks
):
    public = Room.objects.create(slug="public", title="Public")
    secret = Room.objects.create(slug="secret", title="Secret", is_private=True)
    (item,) = room_items()
    with django_capture_on_commit_callbacks(execute=True):
        secret.delete()
        public.delete()
    assert activity_messages(pubsub, "activity-removed") == [{"ids": [item.pk]}]
    assert published(pubsub) == []


def test_replay_sends_activity_removed_in_sequence_and_never_the_removed_item(alice):
    before = activity_selectors.latest_activity_id()
    room = Room.objects.create(slug="plans", title="Plans", created_by=alice)
    Room.objects.create(slug="other", title="Other")
    item = Activity.objects.get(target="Plans")
    room.is_private = True
    room.save()
    events = ReplayStorage().get_events("activity", before)
    assert [(e.type, json.loads(e.data).get("target")) for e in events] == [
        ("activity", "Other"), ("activity-removed", None)
    ]  # fmt: skip
    assert json.loads(events[-1].data) == {"ids": [item.pk]}
    assert events[-1].id == Activity.objects.get(verb=Activity.REMOVED).pk
    assert ReplayStorage().get_current_id("activity") == events[-1].id


def test_history_and_page_never_list_tombstones_or_removed_items(alice, alice_client):
    room = Room.objects.create(slug="plans", title="Plans", created_by=alice)
    Room.objects.create(slug="other", title="Other")
    room.is_private = True
    room.save()
    results = alice_client.get("/api/feed/").json()["results"]
    assert [(r["verb"], r["target"]) for r in results] == [
        ("created the room", "Other"), ("joined Pulse", "")
    ]  # fmt: skip
    page = alice_client.get("/feed/").content.decode()
    assert "Plans" not in page
    assert Activity.REMOVED not in [r["verb"] for r in results]


def test_a_private_room_made_public_is_opened_by_its_creator(
    alice, pubsub, django_capture_on_commit_callbacks
):
    room = Room.objects.create(slug="lab", title="Lab", is_private=True, created_by=alice)
    with django_capture_on_commit_callbacks(execute=True):
        room.is_private = False
        room.save()
        room.title = "Lab (renamed)"
        room.save()  # already public: not news again
    (item,) = activity_messages(pubsub)
    assert (item["verb"], item["actor"], item["target"], item["url"]) == (
        "opened the room", "alice", "Lab", "/chat/lab/"
    )  # fmt: skip
    assert [a.verb for a in room_items()] == ["opened the room"]


def test_an_opened_room_made_private_again_leaves_the_feed(alice):
    room = Room.objects.create(slug="lab", title="Lab", created_by=alice)
    room.is_private = True
    room.save()
    room.is_private = False
    room.save()
    opened = room_items()
    room.is_private = True
    room.save()
    assert room_items() == []
    assert Activity.objects.filter(verb=Activity.REMOVED).latest("id").removed_ids == [opened[0].pk]


def test_a_new_active_user_joins_the_feed_and_an_inactive_one_does_not(
    pubsub, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        dave = make_user("dave")
        make_user("pending", is_active=False)
        dave.first_name = "Dave"
        dave.save()  # an edit is not a join
    (item,) = activity_messages(pubsub)
    assert (item["verb"], item["actor"], item["target"], item["url"]) == (
        "joined Pulse", "dave", "", ""
    )  # fmt: skip
    assert list(Activity.objects.values_list("verb", "actor")) == [("joined Pulse", dave.pk)]
