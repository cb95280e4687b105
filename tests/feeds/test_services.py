"""Chat services against the real database (and Redis where they publish)."""

from __future__ import annotations

import asyncio
import json

import pytest
from asgiref.sync import sync_to_async
from django.core.exceptions import ValidationError

from feeds import live, selectors, services
from feeds.models import Message, Room
from notifications.models import Notification
from realtime.outbox import Outbox
from realtime.redis_state import key, sync_client
from tests.support.factories import make_user
from tests.support.servers import run_manage

pytestmark = pytest.mark.django_db


@pytest.fixture
def room(db) -> Room:
    return Room.objects.create(slug="general", title="General")


async def listen(room_id: int) -> asyncio.Queue:
    """The frames published to the room, as this process's hub delivers them."""
    frames: asyncio.Queue = asyncio.Queue()
    await live.join(Outbox(frames.put, user_id=0), room_id=room_id)
    return frames


def test_a_message_is_broadcast_only_after_commit(room, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        payload, created = services.message_post(
            room=room, author=alice, content="hi", client_fields={"type": "message", "x": 1}
        )
    assert created and Message.objects.filter(pk=payload["id"]).exists()
    assert len(callbacks) == 1  # nothing was sent yet: the broadcast waits for the commit


@pytest.mark.django_db(transaction=True)
async def test_the_broadcast_carries_the_stored_message_and_the_client_fields(redis_layer, alice):
    room = await sync_to_async(Room.objects.create)(slug="general", title="General")
    frames = await listen(room.pk)
    payload, _ = await sync_to_async(services.message_post)(
        room=room, author=alice, content="hi", client_fields={"type": "message", "x": 1}
    )
    frame = json.loads((await asyncio.wait_for(frames.get(), 5))["text"])
    assert frame["type"] == "broadcast"
    assert frame["data"] == {"type": "message", "x": 1, **payload}


def test_each_message_names_the_rooms_previous_one_live_and_in_every_history_page(room, alice):
    other = Room.objects.create(slug="other", title="Other")
    ids, prevs = [], []
    for i in range(5):
        payload, _ = services.message_post(room=room, author=alice, content=f"m{i}")
        services.message_post(room=other, author=alice, content=f"o{i}")  # ids interleave
        ids.append(payload["id"])
        prevs.append(payload["prev"])
    assert prevs == [None, *ids[:-1]]
    pages = [
        selectors.message_history(room_id=room.pk, limit=2)[0],
        selectors.message_history(room_id=room.pk, before=ids[2], limit=2)[0],
        selectors.message_history(room_id=room.pk, after=ids[1], limit=2)[0],
        selectors.message_history(room_id=room.pk, after=ids[1] + 1, limit=2)[0],
    ]
    expected = dict(zip(ids, prevs, strict=True))
    for page in pages:
        assert page and all(m["prev"] == expected[m["id"]] for m in page)


def test_a_repeated_client_msg_id_returns_the_stored_message(room, alice, bob):
    first, created = services.message_post(
        room=room, author=alice, content="once", client_msg_id="abc"
    )
    again, created_again = services.message_post(
        room=room, author=alice, content="once", client_msg_id="abc"
    )
    assert (created, created_again) == (True, False)
    assert again == first
    # the id is per author: bob may use the same one
    _, bobs = services.message_post(room=room, author=bob, content="mine", client_msg_id="abc")
    assert bobs is True
    assert Message.objects.count() == 2


def test_a_client_msg_id_is_unique_per_room_not_per_author(room, alice):
    other = Room.objects.create(slug="other", title="Other")
    first, _ = services.message_post(room=room, author=alice, content="a", client_msg_id="x")
    second, created = services.message_post(
        room=other, author=alice, content="b", client_msg_id="x"
    )
    assert created and second["room"] == "other" and second["id"] != first["id"]
    assert Message.objects.filter(client_msg_id="x").count() == 2


def test_a_client_msg_id_reused_for_other_content_is_refused(room, alice):
    services.message_post(room=room, author=alice, content="a", client_msg_id="x")
    with pytest.raises(ValidationError) as refused:
        services.message_post(room=room, author=alice, content="b", client_msg_id="x")
    assert refused.value.code == "reused"
    assert Message.objects.count() == 1


def test_a_resend_racing_the_original_is_caught_by_the_constraint(room, alice, monkeypatch):
    original, _ = services.message_post(room=room, author=alice, content="x", client_msg_id="r")
    # The lookup ran before the other connection's insert committed:
    monkeypatch.setattr(selectors, "message_by_client_id", _second_call_finds(original))
    payload, created = services.message_post(
        room=room, author=alice, content="x", client_msg_id="r"
    )
    assert (payload, created) == (original, False)
    assert Message.objects.count() == 1


def _second_call_finds(found):
    calls = []

    def lookup(**kw):
        calls.append(kw)
        return None if len(calls) == 1 else found

    return lookup


def test_message_content_is_checked(room, alice):
    for content in ("", "   ", "x" * 2001):
        with pytest.raises(ValidationError):
            services.message_post(room=room, author=alice, content=content)


@pytest.mark.parametrize(
    ("content", "names"),
    [
        ("hi @bob", {"bob"}),
        ("@bob, @carol.", {"bob", "carol", "carol."}),
        ("mail me at alice@example.com", set()),
        ("@a.b-c+d@e_f", {"a.b-c+d@e_f"}),
        ("no mentions", set()),
        ("@", set()),
    ],
)
def test_mentioned_usernames(content, names):
    assert services.mentioned_usernames(content) == names


def test_mentions_notify_readers_once_but_not_the_author(room, alice, bob, charlie):
    charlie.is_active = False
    charlie.save()
    message = Message.objects.create(
        room=room, author=alice, content="@bob @bob @alice @charlie @nobody look"
    )
    notes = list(Notification.objects.all())
    assert [(n.recipient, n.actor, n.target) for n in notes] == [(bob, alice, message)]
    assert notes[0].body == "@bob @bob @alice @charlie @nobody look"
    assert notes[0].url == f"/chat/general/#m{message.pk}"
    assert notes[0].kind == "room.mention"


def test_a_mention_in_another_case_notifies_only_an_unambiguous_user(room, alice, bob):
    Message.objects.create(room=room, author=alice, content="hi @Bob")
    assert [n.recipient for n in Notification.objects.all()] == [bob]
    Notification.objects.all().delete()
    sync_client().delete(*sync_client().keys(key("limits", "*")))  # alice may mention bob again
    big_bob = make_user("BOB")
    Message.objects.create(room=room, author=alice, content="hi @Bob")  # bob or BOB?
    assert Notification.objects.count() == 0
    Message.objects.create(room=room, author=alice, content="hi @BOB and @bob")
    assert {n.recipient for n in Notification.objects.all()} == {bob, big_bob}


def test_a_room_slug_comes_from_the_title(alice):
    assert services.room_create(title="  Release Planning ", created_by=alice).slug == (
        "release-planning"
    )
    assert services.room_create(title="Release planning!", created_by=alice).slug == (
        "release-planning-2"
    )
    assert services.room_create(title="日本語", created_by=alice).slug == "room"
    with pytest.raises(ValidationError):
        services.room_create(title=" ", created_by=alice)
    with pytest.raises(ValidationError):
        services.room_create(title="x" * 101, created_by=alice)


@pytest.mark.django_db(transaction=True)
async def test_typing_is_announced_at_most_once_per_interval(redis_layer, alice):
    room = await sync_to_async(Room.objects.create)(slug="general", title="General")
    frames = await listen(room.pk)
    alices: asyncio.Queue = asyncio.Queue()
    alices_outbox = Outbox(alices.put, user_id=alice.pk)
    await live.join(alices_outbox, room_id=room.pk)
    announced = [
        await services.typing_announce(room_id=room.pk, user_id=alice.pk, username="alice")
        for _ in range(3)
    ]
    assert announced == [True, False, False]
    frame = json.loads((await asyncio.wait_for(frames.get(), 5))["text"])
    assert frame == {"type": "typing", "user": "alice"}
    # Not to the typist's own tabs: the same fan-out skipped alice's socket.
    assert alices.empty() and not alices_outbox.queue


def test_quick_mentions_of_one_user_notify_them_once_per_interval(room, alice, bob, charlie):
    for i in range(10):
        Message.objects.create(room=room, author=alice, content=f"@bob ping {i}")
    assert [n.recipient for n in Notification.objects.all()] == [bob]
    # Per sender and target: charlie mentioning bob, or alice mentioning charlie, still count.
    Message.objects.create(room=room, author=charlie, content="@bob hi")
    Message.objects.create(room=room, author=alice, content="@charlie hi")
    pairs = {(n.actor.username, n.recipient.username) for n in Notification.objects.all()}
    assert pairs == {("alice", "bob"), ("charlie", "bob"), ("alice", "charlie")}


@pytest.mark.django_db(transaction=True)
def test_the_mention_throttle_holds_across_processes(room, alice, bob, redis_server):
    Message.objects.create(room=room, author=alice, content="@bob one")
    code = (
        "from django.contrib.auth.models import User; from feeds.models import Message, Room;"
        "Message.objects.create(room=Room.objects.get(slug='general'),"
        " author=User.objects.get(username='alice'), content='@bob two')"
    )
    result = run_manage("shell", "-c", code, redis_url=redis_server.url)
    assert result.returncode == 0, result.stderr
    assert Message.objects.count() == 2
    assert Notification.objects.count() == 1
