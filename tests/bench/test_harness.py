"""The benchmark harness in a tiny configuration, so it cannot rot (benchmarks are not tests)."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]


def test_sse_fanout_harness_reports_zero_loss_for_ours_and_stock(tmp_path):
    out = tmp_path / "fanout.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.sse_fanout", "--clients", "20", "--rates", "5,10",
         "--step-seconds", "1", "--repeat", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert set(result["summary"]) == {"ours-daphne", "stock-daphne"}
    for target in result["runs"]:
        assert target["idle"]["connected"] == 20
        assert target["idle"]["rss_per_conn_kb"] > 0
        assert [s["rate_events_s"] for s in target["steps"]] == [5, 10]
        for step in target["steps"]:
            assert step["loss"] == 0 and step["delivered"] == step["expected"] > 0
            assert step["gaps"] == step["duplicates"] == 0
            assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"] < 1000
            assert step["server_cpu_pct"] >= 0 and step["client_cpu_pct"] >= 0
    assert result["summary"]["ours-daphne"]["ratio_sustained_p99_250ms"] is not None
    assert "ours-daphne" in run.stdout and "stock-daphne" in run.stdout
