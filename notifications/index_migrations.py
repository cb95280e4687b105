"""Migration operations that build and drop indexes without blocking writes on PostgreSQL.

A plain CREATE INDEX holds a lock that stops every INSERT and UPDATE on the table until the
index is built: minutes on a big notifications table, with notify() and the email worker
waiting. Django's AddIndexConcurrently/RemoveIndexConcurrently avoid it but run only on
PostgreSQL; these do the same there and a plain AddIndex/RemoveIndex on SQLite, which has no
CONCURRENTLY (and no concurrent writers to block). A migration using them sets
`atomic = False`: CONCURRENTLY cannot run in a transaction.
"""

from __future__ import annotations

from typing import Any

from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db.migrations.operations import AddIndex, RemoveIndex
from django.db.migrations.operations.base import Operation


class _PlainOutsidePostgreSQL:
    """The concurrent operation (next in the MRO) on PostgreSQL, `plain` elsewhere."""

    plain: type[Operation]

    def describe(self) -> str:
        return f"{self.plain.describe(self)} (concurrently on PostgreSQL)"

    def database_forwards(self, app_label: str, schema_editor: Any, *states: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, *states)
        else:
            self.plain.database_forwards(self, app_label, schema_editor, *states)

    def database_backwards(self, app_label: str, schema_editor: Any, *states: Any) -> None:
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, *states)
        else:
            self.plain.database_backwards(self, app_label, schema_editor, *states)


class AddIndexWithoutBlocking(_PlainOutsidePostgreSQL, AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, CREATE INDEX elsewhere."""

    plain = AddIndex


class RemoveIndexWithoutBlocking(_PlainOutsidePostgreSQL, RemoveIndexConcurrently):
    """DROP INDEX CONCURRENTLY on PostgreSQL, DROP INDEX elsewhere."""

    plain = RemoveIndex
