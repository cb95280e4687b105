"""The lock files install exactly what the top-level requirements say.

requirements*.in list the packages the project chooses, pinned; `bin/lock` compiles each
into requirements*.txt with every transitive package pinned and hashed, and
`bin/setup-venv` installs the lock with --require-hashes. A .in edited without running
`bin/lock` would install something other than what the .in says: these tests fail first.
No network: they only read the files.
"""

import re
from pathlib import Path

import pytest
from packaging.utils import canonicalize_name

from tests.support.servers import ROOT

LOCKS = {"requirements.in": "requirements.txt", "requirements-dev.in": "requirements-dev.txt"}

REQUIREMENT = re.compile(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;\\]+)")


def top_level(path: Path) -> dict[str, str]:
    """Name -> version of each requirement in a .in file and the .in files it includes (-r)."""
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line.startswith(("-r ", "--requirement ")):
            out.update(top_level(path.parent / line.split(None, 1)[1]))
        elif line and not line.startswith("-"):
            match = REQUIREMENT.fullmatch(line)
            assert match, f"{path.name}: {line!r} is not pinned exactly (name==version)"
            out[canonicalize_name(match[1])] = match[3]
    return out


def locked(path: Path) -> dict[str, list[str]]:
    """Name -> [version, hashes...] of each package in a lock file."""
    out: dict[str, list[str]] = {}
    current: list[str] = []
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip().rstrip("\\").strip()
        if line.startswith("--hash="):
            current.append(line.removeprefix("--hash="))
        elif line and not line.startswith("-"):
            match = REQUIREMENT.fullmatch(line)
            assert match, f"{path.name}: {line!r} is not pinned exactly (name==version)"
            current = out[canonicalize_name(match[1])] = [match[3]]
    return out


def drift(source: Path, lock: Path) -> list[str]:
    """Top-level requirements of `source` that `lock` leaves out or pins at another version."""
    pinned = {name: entry[0] for name, entry in locked(lock).items()}
    return [
        f"{name}=={version} (lock: {pinned.get(name, 'missing')})"
        for name, version in sorted(top_level(source).items())
        if pinned.get(name) != version
    ]


@pytest.mark.parametrize("source", sorted(LOCKS))
def test_the_lock_pins_every_top_level_requirement_at_its_version(source):
    assert drift(ROOT / source, ROOT / LOCKS[source]) == [], (
        f"{LOCKS[source]} does not match {source}: run bin/lock and commit both"
    )


@pytest.mark.parametrize("lock", sorted(LOCKS.values()))
def test_every_locked_package_has_hashes(lock):
    unhashed = [name for name, entry in locked(ROOT / lock).items() if len(entry) < 2]
    assert unhashed == [], f"pip install --require-hashes refuses {lock}: run bin/lock"


def test_the_dev_lock_installs_the_runtime_locks_versions():
    runtime, dev = locked(ROOT / "requirements.txt"), locked(ROOT / "requirements-dev.txt")
    assert set(runtime) <= set(dev)
    assert {name: dev[name][0] for name in runtime} == {n: e[0] for n, e in runtime.items()}


def test_a_requirement_missing_from_the_lock_or_pinned_differently_is_reported(tmp_path):
    (tmp_path / "base.in").write_text("# The framework.\nDjango==5.2.19\nredis==7.4.1\n")
    (tmp_path / "dev.in").write_text("-r base.in\n-c lock.txt\npsycopg[binary]==3.3.9\n")
    (tmp_path / "lock.txt").write_text(
        "django==5.2.19 \\\n    --hash=sha256:aa\n"
        "redis==7.4.0 \\\n    --hash=sha256:bb\n    # via -r base.in\n"
    )
    assert drift(tmp_path / "dev.in", tmp_path / "lock.txt") == [
        "psycopg==3.3.9 (lock: missing)",
        "redis==7.4.1 (lock: 7.4.0)",
    ]
