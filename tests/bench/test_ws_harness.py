"""The WebSocket benchmark harness in a tiny configuration, so it cannot rot."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]


def test_ws_fanout_harness_reports_zero_loss_for_ours_and_stock(tmp_path):
    out = tmp_path / "ws_fanout.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.ws_fanout", "--clients", "20", "--rates", "5,10",
         "--stock-rates", "1", "--step-seconds", "1", "--repeat", "1",
         "--targets", "ours,stock", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "ws_fanout"
    assert set(result["summary"]) == {"ours-daphne", "stock-daphne"}
    rates = {"ours": [5, 10], "stock": [1]}
    for target in result["runs"]:
        assert target["idle"]["connected"] == 20 and target["idle"]["failed"] == 0
        assert target["idle"]["rss_per_conn_kb"] > 0
        assert [s["rate_msgs_s"] for s in target["steps"]] == rates[target["target"]]
        for step in target["steps"]:
            assert step["loss"] == 0 and step["delivered"] == step["expected"] > 0
            assert step["gaps"] == step["duplicates"] == 0 and step["close_codes"] == {}
            assert 0 < step["p50_ms"] <= step["p95_ms"] <= step["p99_ms"] < 1000
            assert step["server_cpu_pct"] >= 0 and step["client_cpu_pct"] >= 0
    assert result["summary"]["ours-daphne"]["ratio_vs_stock"] is not None
    assert "ours-daphne" in run.stdout and "stock-daphne" in run.stdout
