"""The live paths' database threads (realtime.db): one kept SQLite connection, no held lock."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connection

from feeds.models import Room
from realtime.db import chat_database

pytestmark = pytest.mark.django_db(transaction=True)


@chat_database
def _was_open_before_query() -> bool:
    was_open = connection.connection is not None
    Room.objects.exists()
    return was_open


@chat_database
def _post_inside_a_transaction_left_open(slug: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("BEGIN")
    Room.objects.create(slug=slug, title=slug)


async def test_chat_calls_reuse_the_sqlite_connection_and_return_others_to_the_pool() -> None:
    await _was_open_before_query()
    reused = await _was_open_before_query()
    assert reused is (connection.vendor == "sqlite")


async def test_a_transaction_left_open_is_rolled_back_and_holds_no_lock() -> None:
    await _post_inside_a_transaction_left_open("left-open")
    await sync_to_async(Room.objects.create)(slug="after", title="after")
    assert await Room.objects.filter(slug="after").aexists()
    assert not await Room.objects.filter(slug="left-open").aexists()
