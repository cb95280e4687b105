"""A welcome's history is read once per room and reused only while the room is unchanged."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async

from feeds import live, presence, selectors, services, welcome
from feeds.models import Message, Room
from tests.support.communicators import frames_until, join

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def history_reads(monkeypatch) -> list[int]:
    """The room ids whose history the database was asked for (the real query still runs)."""
    reads: list[int] = []
    real = selectors.message_history

    def counted(**kwargs):
        reads.append(kwargs["room_id"])
        return real(**kwargs)

    monkeypatch.setattr(selectors, "message_history", counted)
    welcome.clear()
    return reads


@pytest.fixture
async def first_member(monkeypatch):
    """Join as the room's first member and wait until the room is told (a presence diff is a
    frame, so it changes the room's version); then hold further diffs, and keep a welcome's
    history, for 30 s, so that the joins the test makes next find the room unchanged however
    slow the machine (with 2 s, a busy one re-read it). The held diffs are dropped at the end."""

    async def join_first(user):
        socket, hello = await join("general", user)
        await frames_until(socket, lambda f: f.get("type") == "presence")
        monkeypatch.setattr(presence, "COALESCE_MS", 30_000)
        monkeypatch.setattr(welcome, "TTL_SECONDS", 30.0)
        return socket, hello

    yield join_first
    await presence.settle(cancel=True)


def make_room(author) -> Room:
    room = Room.objects.create(slug="general", title="General")
    for n in range(3):
        Message.objects.create(room=room, author=author, content=f"before {n}")
    return room


async def test_a_burst_into_an_unchanged_room_reads_its_history_once(
    redis_layer, history_reads, first_member, alice, bob, charlie
):
    room = await sync_to_async(make_room)(alice)
    first, _ = await first_member(alice)
    history_reads.clear()
    sockets = [first]
    for user in (alice, bob, charlie):
        socket, hello = await join("general", user)
        sockets.append(socket)
        assert [m["content"] for m in hello["history"]] == ["before 0", "before 1", "before 2"]
    assert history_reads == [room.pk]
    for socket in sockets:
        await socket.disconnect()


async def test_a_message_posted_after_a_welcome_is_in_the_next_one(
    redis_layer, history_reads, alice, bob, charlie
):
    room = await sync_to_async(make_room)(alice)
    first, _ = await join("general", alice)
    await sync_to_async(services.message_post)(room=room, author=bob, content="new one")
    # Once the frame reached this process, the kept history is stale.
    await frames_until(first, lambda f: f.get("type") == "broadcast")
    second, hello = await join("general", charlie)
    assert hello["history"][-1]["content"] == "new one"
    assert history_reads == [room.pk, room.pk]
    await first.disconnect()
    await second.disconnect()


async def test_a_message_no_frame_announced_shows_within_the_ttl(
    redis_layer, history_reads, first_member, monkeypatch, alice, bob, charlie
):
    room = await sync_to_async(make_room)(alice)
    first, _ = await first_member(alice)
    kept, _ = await join("general", charlie)  # read at the room's version from here on
    # Stored without a publish (as when another process's publish failed).
    await sync_to_async(Message.objects.create)(room=room, author=bob, content="quiet")
    second, hello = await join("general", bob)
    assert hello["history"][-1]["content"] == "before 2"  # within the TTL: kept
    monkeypatch.setattr(welcome, "TTL_SECONDS", 0.0)
    welcome.clear()
    third, hello = await join("general", alice)
    assert hello["history"][-1]["content"] == "quiet"
    for socket in (first, kept, second, third):
        await socket.disconnect()


async def test_a_burst_reads_who_is_online_once_and_a_diff_renews_it(
    redis_layer, monkeypatch, first_member, alice, bob, charlie
):
    await sync_to_async(make_room)(alice)
    welcome.clear()
    reads: list[bool] = []
    real = presence.enter

    async def counted(**kwargs):
        reads.append(kwargs["read_announced"])
        return await real(**kwargs)

    monkeypatch.setattr(presence, "enter", counted)
    # The room is told alice joined: a frame, so what was kept is stale.
    first, hello = await first_member(alice)
    assert hello["online"] == ["alice"]
    second, hello = await join("general", bob)
    third, hello_again = await join("general", charlie)
    assert hello["online"] == ["alice", "bob"]
    assert hello_again["online"] == ["alice", "charlie"]  # the same baseline, plus charlie
    assert reads == [True, True, False]
    for socket in (first, second, third):
        await socket.disconnect()


async def test_connects_at_once_share_one_read(
    redis_layer, history_reads, first_member, alice, bob, charlie
):
    room = await sync_to_async(make_room)(alice)
    first, _ = await first_member(alice)  # the room's channel is live from here on
    welcome.clear()
    history_reads.clear()
    joined = await asyncio.gather(*(join("general", user) for user in (alice, bob, charlie)))
    assert history_reads == [room.pk]
    assert {len(hello["history"]) for _, hello in joined} == {3}
    for socket in (first, *(socket for socket, _ in joined)):
        await socket.disconnect()


async def test_a_read_that_fails_is_not_shared(redis_layer, first_member, alice):
    room = await sync_to_async(make_room)(alice)
    first, _ = await first_member(alice)
    version = live.room_version(room.pk)
    cache = welcome._RoomCache()
    release = asyncio.Event()

    async def failing() -> str:
        await release.wait()
        raise RuntimeError("database gone")

    async def working() -> str:
        return "read again"

    loader = asyncio.ensure_future(cache.get(room.pk, version, failing))
    await asyncio.sleep(0)  # the failing read is under way
    waiter = asyncio.ensure_future(cache.get(room.pk, version, working))
    await asyncio.sleep(0)
    release.set()
    with pytest.raises(RuntimeError):
        await loader
    assert await waiter == "read again"
    await first.disconnect()
