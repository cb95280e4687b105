"""Bar charts of a compare_transports result as plain data for server-rendered SVG.

Geometry is computed here, colours come from classes in static CSS: the page needs no
script, and the Content-Security-Policy (no inline styles) holds.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

LABEL_WIDTH = 130
BAR_SPACE = 290
VALUE_WIDTH = 90
ROW_HEIGHT = 30
BAR_HEIGHT = 18
WIDTH = LABEL_WIDTH + BAR_SPACE + VALUE_WIDTH

# (result key, chart title, unit, how a value is written)
CHARTS = (
    ("p50_ms", "Delivery latency, median", "ms", "{:,.1f} ms"),
    ("p99_ms", "Delivery latency, 99th percentile", "ms", "{:,.1f} ms"),
    ("bytes_per_event", "Bytes on the wire per delivered event", "bytes", "{:,} B"),
    ("cpu_us_per_delivery", "Server CPU per delivery", "µs", "{:,} µs"),
)


@dataclass(frozen=True)
class Bar:
    label: str
    text: str
    css: str  # the transport, as a class: its colour
    y: int
    width: int

    @property
    def text_y(self) -> int:
        return self.y + BAR_HEIGHT - 4

    @property
    def value_x(self) -> int:
        return LABEL_WIDTH + self.width + 6


@dataclass(frozen=True)
class Chart:
    title: str
    bars: list[Bar]
    height: int
    width: int = WIDTH
    bar_x: int = LABEL_WIDTH
    bar_height: int = BAR_HEIGHT


def charts(document: dict[str, Any]) -> list[Chart]:
    """One horizontal bar chart per measure, a bar per transport (a measure not taken,
    such as CPU against a remote --url, has no chart)."""
    out = []
    rows = document.get("transports", [])
    for key, title, _unit, fmt in CHARTS:
        values = [row.get(key) for row in rows]
        if not rows or any(not isinstance(v, int | float) for v in values):
            continue
        top = max(values) or 1
        bars = [
            Bar(
                label=row["label"],
                text=fmt.format(value),
                css=f"bar-{row['transport']}",
                y=i * ROW_HEIGHT + 6,
                width=max(1, round(BAR_SPACE * value / top)),
            )
            for i, (row, value) in enumerate(zip(rows, values, strict=True))
        ]
        out.append(Chart(title=title, bars=bars, height=len(rows) * ROW_HEIGHT + 6))
    return out
