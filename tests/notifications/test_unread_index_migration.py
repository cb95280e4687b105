"""Migration 0010 swaps the unread index without blocking writes: CONCURRENTLY on
PostgreSQL, a plain index on SQLite; both ways, on whichever database the suite runs on."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.support.migrations import migrate

pytestmark = pytest.mark.django_db(transaction=True)

BEFORE = [("notifications", "0009_email_delivery")]
AFTER = [("notifications", "0010_unread_by_recipient_and_id")]


def notification_indexes() -> set[str]:
    with connection.cursor() as cursor:
        found = connection.introspection.get_constraints(cursor, "notifications_notification")
    return {name for name, spec in found.items() if spec["index"]}


def index_statements(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries if "INDEX" in q["sql"] and "notif_recipient" in q["sql"]]


def test_the_unread_index_is_swapped_both_ways_concurrently_on_postgresql(back_to_latest):
    migrate(BEFORE)
    assert {"notif_recipient_unread"} <= notification_indexes()
    with CaptureQueriesContext(connection) as forwards:
        migrate(AFTER)
    indexes = notification_indexes()
    assert "notif_recipient_unread_id" in indexes and "notif_recipient_unread" not in indexes
    with CaptureQueriesContext(connection) as backwards:
        migrate(BEFORE)
    indexes = notification_indexes()
    assert "notif_recipient_unread" in indexes and "notif_recipient_unread_id" not in indexes

    statements = index_statements(forwards) + index_statements(backwards)
    assert [s.split(" ", 1)[0] for s in statements] == ["CREATE", "DROP", "CREATE", "DROP"]
    concurrently = connection.vendor == "postgresql"  # SQLite has no CONCURRENTLY
    assert all(("CONCURRENTLY" in s) == concurrently for s in statements), statements
