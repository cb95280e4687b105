"""The long soak: tests/e2e/test_soak.py for as long as asked (CI runs it for a minute).

python -m bench.soak --minutes 30 [--clients 500]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=500)
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 240 or not 1 <= args.clients <= 5000:
        parser.error("--minutes must be in (0, 240] and --clients in [1, 5000]")
    env = dict(os.environ, SOAK_SECONDS=str(args.minutes * 60), SOAK_CLIENTS=str(args.clients))
    command = [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:logging",
               "tests/e2e/test_soak.py"]  # fmt: skip
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
