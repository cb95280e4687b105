"""The metrics-overhead benchmark in a tiny configuration, so it cannot rot."""

import re
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = pytest.mark.slow


def test_metrics_overhead_prints_both_paths_with_a_ratio():
    run = subprocess.run(
        [sys.executable, "-m", "bench.metrics_overhead", "--members", "20", "--rounds", "2",
         "--deliveries", "3"],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    for path in ("ws_chat", "sse"):
        assert re.search(rf"^{path}\s+[\d.]+\s+[\d.]+\s+[\d.]+$", run.stdout, re.M), run.stdout
