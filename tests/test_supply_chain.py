"""The locked runtime packages stay above every known security floor; each top-level one is used.

CI also runs pip-audit (`bin/audit`); its advisory services are not reachable from
the build machines, so these floors — the advisories that affect this stack — are the
check that always runs. A runtime requirement nothing in the product uses is attack
surface and install time in every deployment for nothing: it belongs in
requirements-dev.in. The floors are checked on the lock (requirements.txt: what gets
installed, transitive packages included); "used" on the top-level requirements.in.
"""

import ast
import re
from importlib import import_module
from pathlib import Path

import pytest
from django.utils.module_loading import import_string
from packaging.version import Version

from tests.support.requirements import pins

ROOT = Path(__file__).resolve().parent.parent
# What runs in a deployment; bench/ and tests/ do not.
PRODUCT_DIRS = ("config", "notifications", "feeds", "realtime")

# package: (lowest safe version, why)
SECURITY_FLOORS = {
    "daphne": ("4.2.2", "CVE-2026-44545 unbounded frame size; CVE-2026-44546 header smuggling"),
    "django-eventstream": ("5.3.4", "SSE field injection"),
    "redis": ("4.5.4", "CVE-2023-28858/28859 connection state after cancellation"),
    "twisted": ("24.7.0", "CVE-2024-41671 HTTP pipelining order; CVE-2024-41810 XSS"),
    "django": ("5.2.8", "5.2 security releases"),
}


# Distribution name -> the top-level names it is imported by, where they differ from the
# name with "-" as "_" (django-eventstream -> django_eventstream).
IMPORT_NAMES = {
    "django-csp": ("csp",),
    "django-axes": ("axes",),
    # Not imported by name, pinned because the fast paths rely on their internals.
    **{
        package: (
            "tests/test_canaries.py",
            f'"{package}"',
            "pinned for the fast paths; tests/test_canaries.py checks the version",
        )
        for package in ("autobahn", "txaio", "asgiref", "websockets")
    },
    "psycopg-pool": ("psycopg_pool",),
}

# Used by the product without an import in its code: (file, text that shows the use, why).
# The text must still be in the file, so an entry cannot outlive the use it names.
NOT_IMPORTED = {
    "uvicorn": (
        "notifications/management/commands/serve.py",
        '"-m", "uvicorn"',
        "run as a server process: manage.py serve --server uvicorn",
    ),
    "psycopg": (
        "config/settings.py",
        "django.db.backends.postgresql",
        "Django's PostgreSQL backend imports it when DATABASE_URL is postgres://",
    ),
    # Not imported by name, pinned because the fast paths rely on their internals.
    **{
        package: (
            "tests/test_canaries.py",
            f'"{package}"',
            "pinned for the fast paths; tests/test_canaries.py checks the version",
        )
        for package in ("autobahn", "txaio", "asgiref", "websockets")
    },
    "psycopg-pool": (
        "config/settings.py",
        '["pool"]',
        "Django's PostgreSQL backend imports it for the per-process pool (OPTIONS['pool'])",
    ),
}

DOTTED_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def test_every_runtime_requirement_is_pinned_exactly():
    lines = [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "requirements.in").read_text().splitlines()
    ]
    loose = [line for line in lines if line and "==" not in line]
    assert loose == []


@pytest.mark.parametrize("package", sorted(SECURITY_FLOORS))
def test_pinned_versions_are_above_the_security_floors(package):
    pinned = pins(ROOT / "requirements.txt")
    assert package in pinned, f"{package} must be pinned in requirements.txt"
    floor, why = SECURITY_FLOORS[package]
    assert Version(pinned[package]) >= Version(floor), f"{package} < {floor}: {why}"


def product_references() -> tuple[set[str], set[str]]:
    """Top-level names the product imports, and dotted-path strings it names (settings)."""
    imported, dotted = set(), set()
    for directory in PRODUCT_DIRS:
        for path in (ROOT / directory).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if isinstance(node, ast.Import):
                    imported.update(alias.name.split(".")[0] for alias in node.names)
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    imported.add(node.module.split(".")[0])
                elif isinstance(node, ast.Constant) and DOTTED_PATH.fullmatch(str(node.value)):
                    dotted.add(str(node.value))
    return imported, dotted


def loads(dotted_path: str) -> bool:
    """True if Django could load this string as a module or an attribute of one."""
    try:
        import_module(dotted_path)
    except ImportError:
        try:
            import_string(dotted_path)
        except ImportError:
            return False
    return True


def unused(requirements: list[str]) -> list[str]:
    """The requirements nothing in the product imports or loads by dotted path."""
    imported, dotted = product_references()
    out = []
    for name in requirements:
        modules = IMPORT_NAMES.get(name, (name.replace("-", "_"),))
        by_path = any(path.split(".")[0] in modules and loads(path) for path in sorted(dotted))
        if name not in NOT_IMPORTED and not imported & set(modules) and not by_path:
            out.append(name)
    return out


def test_every_runtime_requirement_is_used_by_the_product():
    requirements = sorted(pins(ROOT / "requirements.in"))
    assert unused(requirements) == [], (
        "imported by nothing in " + ", ".join(PRODUCT_DIRS) + ": move it to "
        "requirements-dev.in, or list it in NOT_IMPORTED with the place that uses it"
    )


def test_a_requirement_only_bench_and_tests_import_is_reported():
    assert unused(["psutil", "hypothesis", "django"]) == ["psutil", "hypothesis"]


@pytest.mark.parametrize("package", sorted(NOT_IMPORTED))
def test_each_requirement_used_without_an_import_is_pinned_and_still_used(package):
    path, text, why = NOT_IMPORTED[package]
    assert package in pins(ROOT / "requirements.in"), f"{package} is not a runtime requirement"
    assert text in (ROOT / path).read_text(), f"{package} ({why}): {text!r} gone from {path}"
