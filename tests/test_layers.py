"""One way down: the delivery core (realtime) never imports a domain app."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOMAIN_APPS = ("notifications", "feeds", "demos")


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_the_realtime_core_imports_no_domain_app() -> None:
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "realtime").rglob("*.py")
        for name in imported_modules(path)
        if name.split(".")[0] in DOMAIN_APPS
    }
    assert not offending, sorted(offending)


def test_notifications_does_not_import_feeds() -> None:
    """feeds builds on notifications (mentions notify, the feed replays through its
    storage); the other way round would be a cycle. The demo seed fills both apps."""
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "notifications").rglob("*.py")
        if "migrations" not in path.parts and path.name != "seed_demo.py"
        for name in imported_modules(path)
        if name.split(".")[0] == "feeds"
    }
    assert not offending, sorted(offending)
