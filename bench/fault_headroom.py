"""The slow tier (fault and load tests) N times in a row beside a CPU hog: how close each
measured figure comes to the limit its test asserts.

    .venv/bin/python -m bench.fault_headroom [--runs 5] [--quiet-runs 1] [--json FILE]

The quiet runs (no hog) are the baseline, run in the same script; the busy runs have a
process spinning on one of the machine's cores for their whole length, as a loaded CI
machine would. Each fault test records its figures through tests/support/figures.py; the
table gives, per figure, the limit, the median and worst of the quiet runs and of the busy
runs, and the headroom (limit / worst busy value). Exits non-zero if any run failed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RUN_TIMEOUT = 30 * 60  # s: one slow tier run; the loop below is bounded by --runs
HOG = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def run_tier(figures: Path, *, hog: bool, pytest_args: list[str]) -> tuple[bool, float]:
    """One run of the slow tier; whether it passed and its wall time."""
    spinner = None
    if hog:
        code = HOG.format(seconds=RUN_TIMEOUT)
        spinner = subprocess.Popen([sys.executable, "-c", code])
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-m", "slow", "-q", "-p", "no:randomly", *pytest_args],
            cwd=ROOT,
            env={**os.environ, "PULSE_FIGURES": str(figures)},
            timeout=RUN_TIMEOUT,
        )
        passed = result.returncode == 0
    except subprocess.TimeoutExpired:
        passed = False
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
    return passed, time.monotonic() - started


def read_figures(path: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    if path.exists():
        for line in path.read_text().splitlines():
            row = json.loads(line)
            out[row["figure"]].append(row)
    return out


def table(quiet: dict[str, list[dict]], busy: dict[str, list[dict]]) -> list[dict[str, Any]]:
    rows = []
    for figure in sorted(set(quiet) | set(busy)):
        q = [r["value"] for r in quiet.get(figure, [])]
        b = [r["value"] for r in busy.get(figure, [])]
        limit = (busy.get(figure) or quiet[figure])[0]["limit"]
        worst = max(b) if b else None
        rows.append(
            {
                "figure": figure,
                "limit": limit,
                "quiet_median": statistics.median(q) if q else None,
                "quiet_worst": max(q) if q else None,
                "busy_median": statistics.median(b) if b else None,
                "busy_worst": worst,
                "headroom": (limit / worst) if worst else None,
                "samples": [len(q), len(b)],
            }
        )
    return rows


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="busy runs (beside the hog)")
    parser.add_argument("--quiet-runs", type=int, default=1, help="baseline runs, no hog")
    parser.add_argument("--json", type=Path, help="write the runs and the table here")
    parser.add_argument("pytest_args", nargs="*", help="after --: more pytest arguments")
    args = parser.parse_args(argv)
    if not 0 <= args.quiet_runs <= 10 or not 1 <= args.runs <= 20:
        parser.error("--runs must be 1-20 and --quiet-runs 0-10")

    with tempfile.TemporaryDirectory(prefix="headroom-") as tmp:
        runs = []
        plan = [False] * args.quiet_runs + [True] * args.runs
        for i, hog in enumerate(plan, 1):
            path = Path(tmp) / f"run-{i}.jsonl"
            passed, seconds = run_tier(path, hog=hog, pytest_args=args.pytest_args)
            runs.append({"run": i, "hog": hog, "passed": passed, "seconds": round(seconds, 1)})
            print(
                f"run {i}/{len(plan)} ({'beside a one-core hog' if hog else 'quiet'}): "
                f"{'passed' if passed else 'FAILED'} in {seconds:.0f} s",
                flush=True,
            )
        quiet: dict[str, list[dict]] = defaultdict(list)
        busy: dict[str, list[dict]] = defaultdict(list)
        for i, hog in enumerate(plan, 1):
            for figure, rows in read_figures(Path(tmp) / f"run-{i}.jsonl").items():
                (busy if hog else quiet)[figure].extend(rows)
    rows = table(quiet, busy)
    print()
    print("| figure | limit | quiet median / worst | busy median / worst | headroom |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['figure']} | {fmt(r['limit'])} | {fmt(r['quiet_median'])} / "
            f"{fmt(r['quiet_worst'])} | {fmt(r['busy_median'])} / {fmt(r['busy_worst'])} | "
            f"{fmt(r['headroom'])}x |"
        )
    green = sum(r["passed"] for r in runs if r["hog"])
    print(f"\nbusy runs green: {green}/{args.runs}")
    if args.json:
        args.json.write_text(json.dumps({"runs": runs, "figures": rows}, indent=1))
    return 0 if all(r["passed"] for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
