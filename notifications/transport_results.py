"""A compare_transports result: its JSON document, its table, and the last one kept for
the staff page (in TRANSPORT_COMPARISON_FILE)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings

COLUMNS = (
    ("label", "transport", "{}"),
    ("p50_ms", "p50 ms", "{:.1f}"),
    ("p99_ms", "p99 ms", "{:.1f}"),
    ("bytes_per_event", "bytes/event", "{:,}"),
    ("requests_per_s", "req/s", "{:,.1f}"),
    ("cpu_us_per_delivery", "CPU µs/delivery", "{:,}"),
    ("connections", "connections", "{:,}"),
    ("lost", "lost", "{}"),
)


def table_cells(document: dict[str, Any]) -> list[list[str]]:
    """Each transport's row of COLUMNS, written out (— for a measure not taken)."""
    return [
        ["—" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in COLUMNS]
        for row in document["transports"]
    ]


def format_table(document: dict[str, Any]) -> str:
    """The comparison as a plain-text table, one row per transport (also README's)."""
    cells = [[title for _, title, _ in COLUMNS], *table_cells(document)]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = [
        " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def save_last(document: dict[str, Any]) -> None:
    path = Path(settings.TRANSPORT_COMPARISON_FILE)
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_suffix(".tmp")
    temp.write_text(json.dumps(document, indent=2))
    temp.replace(path)  # a page never reads half a file


def load_last() -> dict[str, Any] | None:
    try:
        document = json.loads(Path(settings.TRANSPORT_COMPARISON_FILE).read_text())
    except (OSError, ValueError):
        return None
    return document if isinstance(document, dict) and document.get("transports") else None
