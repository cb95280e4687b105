"""Keep content type ids the same in every test, as they stay in a running site.

A transactional test ends with a flush: every row goes, and Django's post_migrate handler
creates the content types (and permissions) again under new ids, because SQLite's
AUTOINCREMENT and PostgreSQL's sequences keep counting. The server processes the tests
start live for the whole session and cache content types by id, as every Django process
does (`ContentType.objects.get_for_model`); after a flush, a notification about a chat
message then named an id that no longer existed, and its insert failed on the foreign key
(a mention sent from a session server never reached its user). A site never renumbers its
content types, so the fix is here: put the ids back to those the session began with.
"""

from __future__ import annotations

from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.db.models import Case, F, IntegerField, Value, When

_canonical: dict[tuple[str, str], int] = {}


def restore_ids() -> None:
    """Give every content type the id it had when first seen in this session (4 queries
    when a flush renumbered them, 1 when not)."""
    rows = ContentType.objects.values_list("app_label", "model", "pk")
    current = {(app_label, model): pk for app_label, model, pk in rows}
    if not _canonical:
        _canonical.update(current)
        return
    moves = {
        old: _canonical[key] for key, old in current.items() if _canonical.get(key, old) != old
    }
    if not moves:
        return
    # Through negative ids, so no two rows ever share one; the foreign keys from
    # permissions are deferred to the commit, by which time they match again.
    to_negative = Case(*(When(id=old, then=Value(-new)) for old, new in moves.items()))
    permission_to_negative = Case(
        *(When(content_type_id=old, then=Value(-new)) for old, new in moves.items()),
        output_field=IntegerField(),
    )
    with transaction.atomic():
        Permission.objects.filter(content_type_id__in=moves).update(
            content_type_id=permission_to_negative
        )
        ContentType.objects.filter(id__in=moves).update(id=to_negative)
        ContentType.objects.filter(id__lt=0).update(id=-F("id"))
        Permission.objects.filter(content_type_id__lt=0).update(
            content_type_id=-F("content_type_id")
        )
    ContentType.objects.clear_cache()
