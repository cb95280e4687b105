"""One way down: domain apps use the delivery core (realtime), never the other way round;
no import circles; the core's shared parts (Redis clients, server internals) exist once."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = "realtime"
DOMAIN_APPS = ("notifications", "feeds", "demos", "ticker")
PRODUCT = ("config", CORE, *DOMAIN_APPS)


def product_modules() -> dict[str, Path]:
    out = {}
    for package in PRODUCT:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = path
    return out


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at the top or inside a function (`from a import b`
    counts as `a` and as `a.b`, which is a module when b is one)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_the_core_imports_no_domain_app() -> None:
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / CORE).rglob("*.py")
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


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return cycles


def test_no_module_of_the_product_is_part_of_an_import_circle() -> None:
    modules = product_modules()
    graph = {
        name: {m for m in imported_modules(path) if m in modules and m != name}
        for name, path in modules.items()
    }
    assert import_cycles(graph) == []


def test_the_cycle_finder_finds_one() -> None:
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def files_matching(pattern: str) -> set[str]:
    found = re.compile(pattern)
    return {
        str(path.relative_to(ROOT))
        for path in product_modules().values()
        if found.search(path.read_text())
    }


def test_redis_clients_are_made_in_one_place() -> None:
    clients = r"\b(Strict)?Redis(\.from_url|\()|\bSentinel\(|\.master_for\("
    assert files_matching(clients) == {"realtime/redis_clients.py"}


def test_only_the_server_adapters_read_a_servers_internals() -> None:
    internals = r"_tempDataLen|dataBuffer|get_write_buffer_size|\.doWrite\(|write_paused"
    assert files_matching(internals) == {"realtime/servers.py", "realtime/daphne_ws.py"}


def test_test_modules_import_shared_code_only_from_tests_support() -> None:
    """Helpers shared by tests live in tests/support/; a test module importing another test
    module (or conftest's internals) couples tests that should fail on their own."""
    offending = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "tests").rglob("*.py")
        if "support" not in path.relative_to(ROOT).parts
        for name in imported_modules(path)
        if name.startswith("tests.") and not name.startswith("tests.support")
    }
    test_imports = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in (ROOT / "tests").rglob("*.py")
        for name in imported_modules(path)
        if name.startswith("tests.") and name.rsplit(".", 1)[-1].startswith(("test_", "conftest"))
    }
    assert not offending | test_imports, sorted(offending | test_imports)
