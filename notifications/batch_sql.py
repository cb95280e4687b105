"""SQL over a batch of users that passes all their ids as one parameter.

The ORM compiles SQL and parameters per row (bulk_create) and per id (`__in`): for a batch
of 2,000 recipients that cost more than the database's own work. Here the ids travel as
one JSON array (SQLite's json_each) or one array (PostgreSQL's unnest), whatever their
number, so no statement nears SQLite's variable limit either.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from django.db import connection
from django.db.models.base import ModelState
from django.db.models.expressions import RawSQL
from django.db.models.signals import post_init, pre_init
from django.utils import timezone

from notifications.models import Notification

# Up to this many ids stay an ordinary `IN (%s, ...)` list, which the planner knows best.
SHORT_LIST = 100


def _id_rows(ids: Collection[int]) -> tuple[str, Any]:
    """A row source of the ids, one column named `id`, and its single parameter."""
    if connection.vendor == "postgresql":
        return "SELECT unnest(%s::bigint[]) AS id", list(ids)
    return "SELECT value AS id FROM json_each(%s)", json.dumps(list(ids))


def id_set(ids: Collection[int]) -> Collection[int] | RawSQL:
    """The right-hand side of `pk__in=`: a subquery with one parameter for a long list."""
    if len(ids) <= SHORT_LIST:
        return ids
    sql, param = _id_rows(ids)
    return RawSQL(sql, [param])


def notifications_insert(
    *, recipient_ids: Sequence[int], content: dict[str, Any]
) -> list[Notification]:
    """Insert one notification per recipient, all with `content` (attname → value) and
    created now; return the rows inserted, in id order, as a query would.

    A recipient who already has one with the same non-empty `send_key` is skipped (the
    unique constraint, without an error), so a concurrent or repeated send gives nobody two.
    """
    content = {**content, "created_at": timezone.now()}
    meta = Notification._meta
    # NULL columns are left out: an untyped NULL in INSERT ... SELECT is text to PostgreSQL.
    fields = [meta.get_field(attname) for attname, value in content.items() if value is not None]
    values = [f.get_db_prep_save(content[f.attname], connection) for f in fields]
    qn = connection.ops.quote_name
    recipient = qn(meta.get_field("recipient").column)
    columns = ", ".join([recipient, *(qn(f.column) for f in fields)])
    rows, ids = _id_rows(recipient_ids)
    # WHERE true: SQLite would read `ON CONFLICT` as a join constraint of the SELECT.
    sql = (
        f"INSERT INTO {qn(meta.db_table)} ({columns}) "
        f"SELECT {', '.join(['r.id'] + ['%s'] * len(values))} FROM ({rows}) AS r WHERE true "
        f"ON CONFLICT DO NOTHING RETURNING {qn(meta.pk.column)}, {recipient}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*values, ids])
        inserted = cursor.fetchall()
    return _instances(sorted(inserted), content)


def _instances(rows: list[tuple[int, int]], content: dict[str, Any]) -> list[Notification]:
    # Columns left out of the insert hold their database default (collapse_count).
    template = {
        f.attname: content.get(f.attname, f.get_default() if f.has_db_default() else None)
        for f in Notification._meta.concrete_fields
    }
    alias = connection.alias  # read once: each read goes through a thread-local proxy
    if pre_init.has_listeners(Notification) or post_init.has_listeners(Notification):
        return [
            _saved(Notification(**{**template, "id": pk, "recipient_id": r}), alias)
            for pk, r in rows
        ]
    # Built as unpickling builds a model instance, without __init__, which costs more than
    # the insert itself; only while no pre_init/post_init receiver expects to run.
    out = []
    for pk, recipient_id in rows:
        notification = Notification.__new__(Notification)
        notification.__dict__.update(template, id=pk, recipient_id=recipient_id)
        notification._state = ModelState()
        out.append(_saved(notification, alias))
    return out


def _saved(notification: Notification, alias: str) -> Notification:
    notification._state.adding = False
    notification._state.db = alias
    return notification
