"""What each user chose to get: per category in-app on/off and email mode, pause, quiet hours.

Read and written as one JSON document (GET/PUT /api/preferences/, the settings page):

    {"categories": {"chat": {"in_app": false, "email": "daily"}, ...},
     "pause_email": false, "quiet_hours": {"start": "22:00", "end": "07:00"} | null,
     "time_zone": "Europe/Berlin"}

A category nobody set follows its kinds' default channels. Kinds that are not mutable
cannot be turned off: such a change is refused with the reason, never half applied.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Collection
from datetime import time
from functools import cache
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from notifications import kinds
from notifications.batch_sql import id_set
from notifications.models import CategoryPreference, EmailMode, NotificationSettings

KEYS = {"categories", "pause_email", "quiet_hours", "time_zone"}
CATEGORY_KEYS = {"in_app", "email"}


@cache
def time_zones() -> list[str]:
    return sorted(zoneinfo.available_timezones())


def category_default(category: str) -> dict[str, Any]:
    """What a user gets of a category until they choose: its kinds' default channels."""
    members = kinds.categories().get(category, [])
    email = any(kinds.EMAIL in k.channels for k in members)
    return {
        "in_app": any(kinds.IN_APP in k.channels for k in members),
        "email": EmailMode.IMMEDIATE if email else EmailMode.OFF,
    }


def locked_reason(category: str) -> str | None:
    """Why a category cannot be turned off (a kind of it is not mutable), or None."""
    fixed = [k.name for k in kinds.categories().get(category, []) if not k.mutable]
    return f"{', '.join(fixed)} may not be muted" if fixed else None


def preferences_get(*, user_id: int) -> dict[str, Any]:
    """The user's preferences as the API shows them, every registered category listed."""
    chosen = {
        p.category: {"in_app": p.in_app, "email": p.email}
        for p in CategoryPreference.objects.filter(user_id=user_id)
    }
    categories = {}
    for category, members in kinds.categories().items():
        reason = locked_reason(category)
        categories[category] = {
            **chosen.get(category, category_default(category)),
            "kinds": [{"name": k.name, "label": k.label} for k in members],
            "mutable": reason is None,
        }
    s = NotificationSettings.objects.filter(user_id=user_id).first() or NotificationSettings()
    quiet = None
    if s.quiet_start is not None and s.quiet_end is not None:
        quiet = {"start": f"{s.quiet_start:%H:%M}", "end": f"{s.quiet_end:%H:%M}"}
    return {
        "categories": categories,
        "pause_email": s.pause_email,
        "quiet_hours": quiet,
        "time_zone": s.time_zone,
    }


def preferences_update(*, user: Any, data: Any) -> dict[str, Any]:
    """Apply the keys given (others keep their values); return the preferences after.

    Raises ValidationError with a readable message, before anything is written.
    """
    if not isinstance(data, dict):
        raise ValidationError("expected a JSON object")
    if unknown := sorted(set(data) - KEYS):
        raise ValidationError(f"unknown field {unknown[0]!r}; fields: {', '.join(sorted(KEYS))}")
    categories = _check_categories(data.get("categories", {}))
    settings_changes = _check_settings(data)
    with transaction.atomic():
        for category, values in categories.items():
            CategoryPreference.objects.update_or_create(
                user=user,
                category=category,
                create_defaults={**category_default(category), **values},
                defaults=values,
            )
        if settings_changes:
            NotificationSettings.objects.update_or_create(user=user, defaults=settings_changes)
    return preferences_get(user_id=user.pk)


def _check_categories(raw: Any) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        raise ValidationError("categories must be an object of category → settings")
    known = kinds.categories()
    out = {}
    for category, values in raw.items():
        if category not in known:
            raise ValidationError(
                f"unknown category {category!r}; categories: {', '.join(sorted(known))}"
            )
        out[category] = _check_category(category, values)
    return out


def _check_category(category: str, values: Any) -> dict[str, Any]:
    if not isinstance(values, dict) or not values or set(values) - CATEGORY_KEYS:
        raise ValidationError(f"categories.{category} must be an object with in_app and/or email")
    in_app, email = values.get("in_app", True), values.get("email", EmailMode.IMMEDIATE)
    if not isinstance(in_app, bool):
        raise ValidationError(f"categories.{category}.in_app must be true or false")
    if email not in EmailMode.values:
        raise ValidationError(
            f"categories.{category}.email must be one of {', '.join(EmailMode.values)}"
        )
    reason = locked_reason(category)
    if reason and not in_app:
        raise ValidationError(f"category {category!r} cannot be turned off: {reason}")
    emailed = any(kinds.EMAIL in k.channels and not k.mutable for k in kinds.categories()[category])
    if reason and emailed and email == EmailMode.OFF:
        raise ValidationError(f"email for category {category!r} cannot be turned off: {reason}")
    return values


def _check_settings(data: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if "pause_email" in data:
        if not isinstance(data["pause_email"], bool):
            raise ValidationError("pause_email must be true or false")
        changes["pause_email"] = data["pause_email"]
    if "quiet_hours" in data:
        changes["quiet_start"], changes["quiet_end"] = _quiet_hours(data["quiet_hours"])
    if "time_zone" in data:
        if data["time_zone"] not in time_zones():
            raise ValidationError("time_zone must be an IANA time zone name, such as Europe/Berlin")
        changes["time_zone"] = data["time_zone"]
    return changes


def _quiet_hours(raw: Any) -> tuple[time | None, time | None]:
    if raw is None:
        return None, None
    if not isinstance(raw, dict) or set(raw) != {"start", "end"}:
        raise ValidationError('quiet_hours must be null or {"start": "HH:MM", "end": "HH:MM"}')
    try:
        start, end = (time.fromisoformat(raw[k]) for k in ("start", "end"))
    except (TypeError, ValueError):
        raise ValidationError("quiet_hours start and end must be times as HH:MM") from None
    if start == end:
        raise ValidationError("quiet_hours start and end must differ")
    return start, end


def muted_user_ids(*, user_ids: Collection[int], kind: kinds.Kind) -> set[int]:
    """Those of `user_ids` who turned off the kind's category in-app: they get none of it."""
    if not kind.mutable or not user_ids:
        return set()
    prefs = CategoryPreference.objects.filter(category=kind.category, user_id__in=id_set(user_ids))
    if category_default(kind.category)["in_app"]:
        return set(prefs.filter(in_app=False).values_list("user_id", flat=True))
    return set(user_ids) - set(prefs.filter(in_app=True).values_list("user_id", flat=True))


def muted_kinds(*, user_id: int) -> list[str]:
    """The kinds the user gets none of: those of the categories they turned off in-app.

    Pages drop live announcements of these kinds, which reach everyone on a shared channel.
    """
    off = set(
        CategoryPreference.objects.filter(user_id=user_id, in_app=False).values_list(
            "category", flat=True
        )
    )
    return [k.name for k in kinds.all_kinds() if k.category in off and k.mutable]
