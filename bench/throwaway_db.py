"""The check that keeps bench-only servers off any database bench/ did not create."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured


def is_throwaway_database(database: dict[str, Any]) -> bool:
    """True for the databases BenchEnv makes: SQLite in an rtbench-* temp dir, or rtbench_*."""
    name = Path(str(database.get("NAME") or ""))
    if database["ENGINE"] == "django.db.backends.sqlite3":
        return name.parent.name.startswith("rtbench-") and name.parent.parent == Path(
            tempfile.gettempdir()
        )
    return database["ENGINE"] == "django.db.backends.postgresql" and name.name.startswith(
        "rtbench_"
    )


def require_throwaway_database(database: dict[str, Any], *, owner: str) -> None:
    """Refuse to load `owner` unless `database` is one that bench/ created and will drop.

    The stock baselines read any channel or skip room access: on a real database they would
    leak it, so they must not start there even when pointed at it by accident.
    """
    if not is_throwaway_database(database):
        raise ImproperlyConfigured(f"{owner} is for bench/ server processes only")
