"""The fast tier as `bin/test --fast` runs it against how it ran before, back to back.

    nice -n 19 .venv/bin/python -m bench.fast_tier [--rounds 2]

Each round runs the baseline, then `bin/test --fast -q`, and prints wall time, CPU time
(user + sys of every process the run started) and pytest's own time for each. Baseline:
one pytest process (`-p no:xdist`) with PYTHONDONTWRITEBYTECODE=1 and no assert-rewritten
test bytecode left from earlier runs, as `bin/test --fast` ran before the two workers.
Alternating the two in one script keeps a busy machine's load about equal for both.
Exits non-zero if any run failed.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 15 * 60  # s: one run of the fast tier; --rounds bounds the loop


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def forget_test_bytecode() -> None:
    for cache in (ROOT / "tests").rglob("__pycache__"):
        shutil.rmtree(cache, ignore_errors=True)


def run(command: list[str], env: dict[str, str]) -> tuple[bool, float, float, float | None]:
    """Whether it passed, its wall and CPU seconds, and the time pytest reported."""
    cpu, started = children_cpu(), time.monotonic()
    try:
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
        )
        passed, output = result.returncode == 0, result.stdout
    except subprocess.TimeoutExpired:
        passed, output = False, ""
    wall, cpu = time.monotonic() - started, children_cpu() - cpu
    found = re.findall(r" in ([0-9.]+)s", output)
    return passed, wall, cpu, float(found[-1]) if found else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, choices=range(1, 6))
    rounds = parser.parse_args().rounds
    venv_python = str(ROOT / os.environ.get("VENV", ".venv") / "bin" / "python")
    before = [venv_python, "-m", "pytest", "-m", "not slow", "-q", "-p", "no:xdist"]
    runs = {
        "before (1 process)": (before, {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}),
        "bin/test --fast": ([str(ROOT / "bin" / "test"), "--fast", "-q"], dict(os.environ)),
    }
    failed = False
    print(f"{'run':<22} {'wall s':>7} {'cpu s':>7} {'pytest s':>9}  passed")
    for _ in range(rounds):
        for name, (command, env) in runs.items():
            if name.startswith("before"):
                forget_test_bytecode()
            passed, wall, cpu, reported = run(command, env)
            failed |= not passed
            shown = f"{reported:9.1f}" if reported is not None else f"{'?':>9}"
            print(f"{name:<22} {wall:7.1f} {cpu:7.1f} {shown}  {passed}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
