"""bin/setup-venv picks a supported Python and keeps each virtualenv on the one it was made by.

The project supports CPython 3.11, 3.12 and 3.13 (README, "Python versions"); PYTHON picks
one, VENV names the virtualenv. A virtualenv made by another interpreter than the chosen one
must be made anew, or switching PYTHON would run the tests on the old interpreter. These run
the real script with real interpreters and an empty requirements file, so only one
virtualenv's creation is paid for.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.servers import ROOT

SETUP_VENV = ROOT / "bin" / "setup-venv"
# Interpreters a machine of this kind has or gets: this venv's base (pyenv's 3.11 here),
# Debian 12's 3.11, and what bin/python-versions builds.
CANDIDATES = [
    sys._base_executable,
    "/usr/bin/python3.11",
    "/opt/python3.13/bin/python3.13",
    "/opt/python3.12/bin/python3.12",
]
IDENTITY = "import sys; print(sys.base_prefix, sys.version)"


def identity(python: str | Path) -> str:
    return subprocess.run(
        [python, "-c", IDENTITY], capture_output=True, text=True, check=True
    ).stdout


def two_interpreters() -> tuple[str, str]:
    """Two supported interpreters that are not the same installation."""
    found: dict[str, str] = {}
    for path in CANDIDATES:
        if os.access(path, os.X_OK):
            found.setdefault(identity(path), path)
    assert len(found) >= 2, f"need two distinct Pythons among {CANDIDATES}, found {found}"
    first, second = list(found.values())[:2]
    return first, second


def setup_venv(tmp_path: Path, python: str) -> subprocess.CompletedProcess:
    requirements = tmp_path / "empty.txt"
    requirements.touch()
    env = {**os.environ, "PYTHON": python, "VENV": str(tmp_path / "venv")}
    return subprocess.run(
        [SETUP_VENV, requirements], env=env, capture_output=True, text=True, timeout=300
    )


def test_an_unsupported_python_is_refused_with_the_supported_versions(tmp_path):
    done = setup_venv(tmp_path, "python2.7")
    assert done.returncode == 1
    assert done.stderr == (
        "error: PYTHON=python2.7 is not found or not a supported Python (3.13, 3.12 or 3.11)\n"
    )
    assert not (tmp_path / "venv").exists()


@pytest.mark.slow  # a virtualenv with pip, and pip upgraded from the index: ~10-20 s
def test_a_venv_made_by_another_python_is_made_anew_then_kept(tmp_path):
    first, second = two_interpreters()
    venv_python = tmp_path / "venv" / "bin" / "python"
    subprocess.run([first, "-m", "venv", "--without-pip", tmp_path / "venv"], check=True)

    switched = setup_venv(tmp_path, second)
    assert switched.returncode == 0, switched.stderr
    assert "was made by another Python: making it anew" in switched.stdout
    assert identity(venv_python) == identity(second)

    again = setup_venv(tmp_path, second)
    assert (again.returncode, again.stdout) == (0, "")
