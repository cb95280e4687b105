"""Reading requirement pins from .in and lock files."""

import re
from pathlib import Path


def pins(path: Path) -> dict[str, str]:
    """Name -> version of each `name==version` line of a .in file or a lock file."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)", line)
        if match:
            out[match[1].lower()] = match[3]
    return out
