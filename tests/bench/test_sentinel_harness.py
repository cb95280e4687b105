"""The Sentinel cost benchmark in a tiny configuration, so it cannot rot."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_sentinel_bench_reports_both_modes_side_by_side(tmp_path):
    out = tmp_path / "sentinel.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.sentinel", "--publishes", "50", "--reconnects", "5",
         "--rounds", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "sentinel"
    for mode in ("plain", "sentinel"):
        assert set(result[mode]) == {"publish_sync_us", "publish_async_us", "reconnect_us"}
        assert all(value > 0 for value in result[mode].values())
    assert "ratio" in run.stdout
