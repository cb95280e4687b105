"""A tab's backfill after a reconnect, when live messages came out of id order.

Message ids are taken at INSERT, but each server process publishes after its own commit:
across processes a message can be broadcast before one with a lower id, and when Redis
goes away between the two publishes the lower one is never broadcast at all (its publish
fails; the row is stored). The tab is then told to resync (4012) and must still get it.
"""

from __future__ import annotations

import asyncio
import random

import pytest
from asgiref.sync import sync_to_async

from feeds import protocol, services
from feeds.models import Message, Room
from tests.support.chat_tab import ChatTab
from tests.support.factories import make_sessions, make_users

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

RUN_FOR = 60.0


def setup_data() -> tuple[list, list[str], Room]:
    users = make_users(2, "backfill")
    room = Room.objects.create(slug="backfill", title="Backfill")
    return users, make_sessions(users), room


def store_unbroadcast(room: Room, author, count: int) -> list[int]:
    """Messages stored whose broadcast never went out (a publish that failed)."""
    return [
        Message.objects.create(room=room, author=author, content=f"quiet {i}").pk
        for i in range(count)
    ]


def change_while_away(room: Room, author, *, edit: int, delete: int) -> None:
    """An edit and a delete whose live frames the tab is not there to get."""
    services.message_edit(room=room, editor=author, message_id=edit, content="edited away")
    services.message_delete(room=room, actor=author, message_id=delete)


async def wait_for(condition, timeout: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_a_message_broadcast_lost_below_one_seen_live_is_backfilled(server):
    (alice, bob), (alice_session, bob_session), room = await sync_to_async(setup_data)()
    loop = asyncio.get_running_loop()
    rng = random.Random(0)
    tabs = [
        ChatTab(port=server.port, slug=room.slug, session=s, username=u.username, rng=rng)
        for u, s in ((alice, alice_session), (bob, bob_session))
    ]
    reader, sender = tabs
    tasks = [loop.create_task(tab.run(until=loop.time() + RUN_FOR)) for tab in tabs]
    try:
        await asyncio.wait_for(asyncio.gather(*(t.welcomed.wait() for t in tabs)), 15)
        # Message N is stored, its broadcast lost; N + 1 is broadcast and seen live.
        (lost,) = await sync_to_async(store_unbroadcast)(room, bob, 1)
        cmid = sender.send_message("seen live")
        await wait_for(lambda: cmid not in sender.pending and len(reader.shown) == 1)
        assert lost not in reader.shown and max(reader.shown) > lost
        # More than a welcome's history arrives while the tab is away.
        quiet = await sync_to_async(store_unbroadcast)(room, bob, protocol.WELCOME_HISTORY + 10)
        before = len(reader.connections)
        reader.drop()
        # ...and, while it is away, one message in the gap is edited and another deleted.
        edited, deleted = quiet[3], quiet[4]
        await sync_to_async(change_while_away)(room, bob, edit=edited, delete=deleted)
        await wait_for(lambda: len(reader.connections) > before and reader.welcomed.is_set())
        await wait_for(lambda: set(quiet) <= reader.shown)
        await asyncio.sleep(0.5)  # a later history page would have come by now
        assert lost in reader.shown
        # The backfill gave their current state, in their places in the chain.
        assert reader.contents[edited] == "edited away" and reader.contents[quiet[5]] == "quiet 5"
        assert reader.deleted == {deleted} and reader.contents[deleted] == ""
        assert reader.complete_id >= max(quiet)
    finally:
        for tab in tabs:
            tab.close()
        await asyncio.gather(*tasks, return_exceptions=True)
