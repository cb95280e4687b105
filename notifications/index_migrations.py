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


def _on_postgresql(schema_editor: Any) -> bool:
    return schema_editor.connection.vendor == "postgresql"


class AddIndexWithoutBlocking(AddIndexConcurrently):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, CREATE INDEX elsewhere."""

    def database_forwards(self, app_label: str, schema_editor: Any, *states: Any) -> None:
        base = AddIndexConcurrently if _on_postgresql(schema_editor) else AddIndex
        base.database_forwards(self, app_label, schema_editor, *states)

    def database_backwards(self, app_label: str, schema_editor: Any, *states: Any) -> None:
        base = AddIndexConcurrently if _on_postgresql(schema_editor) else AddIndex
        base.database_backwards(self, app_label, schema_editor, *states)


class RemoveIndexWithoutBlocking(RemoveIndexConcurrently):
    """DROP INDEX CONCURRENTLY on PostgreSQL, DROP INDEX elsewhere."""

    def database_forwards(self, app_label: str, schema_editor: Any, *states: Any) -> None:
        base = RemoveIndexConcurrently if _on_postgresql(schema_editor) else RemoveIndex
        base.database_forwards(self, app_label, schema_editor, *states)

    def database_backwards(self, app_label: str, schema_editor: Any, *states: Any) -> None:
        base = RemoveIndexConcurrently if _on_postgresql(schema_editor) else RemoveIndex
        base.database_backwards(self, app_label, schema_editor, *states)
