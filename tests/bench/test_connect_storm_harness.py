"""The connect-storm benchmark harness in a tiny configuration, so it cannot rot."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]


def test_connect_storm_serves_every_transport_and_reports_cpu_per_connect(tmp_path):
    out = tmp_path / "connect_storm.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.connect_storm", "--clients", "30", "--concurrency", "10",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert (result["clients"], result["database"]) == (30, "sqlite")
    for transport in ("chat", "sse", "stock"):
        (burst,) = result[transport]["runs"]
        assert (burst["served"], burst["failed"]) == (30, 0), burst
        assert burst["cpu_ms_per_connect"] > 0 and burst["connects_per_s"] > 0
    assert "x stock" in run.stdout
