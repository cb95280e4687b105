"""The pinned requirements stay above every known security floor.

CI also runs pip-audit (`bin/audit`); its advisory services are not reachable from
the build machines, so these floors — the advisories that affect this stack — are the
check that always runs.
"""

import re
from pathlib import Path

import pytest
from packaging.version import Version

ROOT = Path(__file__).resolve().parent.parent

# package: (lowest safe version, why)
SECURITY_FLOORS = {
    "daphne": ("4.2.2", "CVE-2026-44545 unbounded frame size; CVE-2026-44546 header smuggling"),
    "django-eventstream": ("5.3.4", "SSE field injection"),
    "redis": ("4.5.4", "CVE-2023-28858/28859 connection state after cancellation"),
    "twisted": ("24.7.0", "CVE-2024-41671 HTTP pipelining order; CVE-2024-41810 XSS"),
    "django": ("5.2.8", "5.2 security releases"),
}


def pins(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[^\]]+\])?==([^\s;]+)", line)
        if match:
            out[match[1].lower()] = match[3]
    return out


def test_every_runtime_requirement_is_pinned_exactly():
    lines = [
        line.split("#", 1)[0].strip()
        for line in (ROOT / "requirements.txt").read_text().splitlines()
    ]
    loose = [line for line in lines if line and "==" not in line]
    assert loose == []


@pytest.mark.parametrize("package", sorted(SECURITY_FLOORS))
def test_pinned_versions_are_above_the_security_floors(package):
    pinned = pins(ROOT / "requirements.txt")
    assert package in pinned, f"{package} must be pinned in requirements.txt"
    floor, why = SECURITY_FLOORS[package]
    assert Version(pinned[package]) >= Version(floor), f"{package} < {floor}: {why}"
