"""Sample a server with py-spy while a benchmark runs, and summarize where time went.

py-spy writes collapsed stacks ("frame;frame;frame count"); `summarize` turns them into
the share of samples per function, inclusive (anywhere on the stack) and self (on top),
which is what docs/performance.md quotes.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from bench.env import ServerProcess


def py_spy() -> str | None:
    return shutil.which("py-spy") or shutil.which("py-spy", path=str(Path(sys.executable).parent))


@contextlib.contextmanager
def profiling(server: ServerProcess, directory: str | None, label: str) -> Iterator[None]:
    """py-spy record the server for the duration of the block (no-op without a directory)."""
    if not directory:
        yield
        return
    exe = py_spy()
    if exe is None:
        print("py-spy is not installed (pip install py-spy); not profiling", flush=True)
        yield
        return
    out = Path(directory) / f"{label}-{time.strftime('%H%M%S')}.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    recorder = subprocess.Popen(
        [exe, "record", "--pid", str(server.pid), "--format", "raw", "--rate", "200",
         "--output", str(out), "--nonblocking"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        recorder.send_signal(2)  # SIGINT: py-spy writes its output and exits
        try:
            recorder.wait(timeout=30)
        except subprocess.TimeoutExpired:
            recorder.kill()
        if out.exists():
            print(f"profile: {out}")
            print(summarize(out), flush=True)


def summarize(path: Path, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [f.split(" (")[0] + " " + f.split("/")[-1].rstrip(")") for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        self_time[frames[-1]] += n
    if not total:
        return "no samples"
    lines = [f"{total} samples; inclusive share (self share) per function:"]
    for frame, n in inclusive.most_common(top):
        lines.append(f"{100 * n / total:6.1f}% ({100 * self_time[frame] / total:5.1f}%) {frame}")
    lines.append("top self time:")
    for frame, n in self_time.most_common(top):
        lines.append(f"{100 * n / total:6.1f}% {frame}")
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(Path(sys.argv[1])))
