"""The WebSocket benchmark harness in a tiny configuration, so it cannot rot."""

import json
import subprocess
import sys
from collections import Counter

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


def test_ws_fanout_mix_counts_edits_deletes_and_reactions_against_plain_before(tmp_path):
    out = tmp_path / "ws_fanout.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.ws_fanout", "--clients", "20", "--rates", "10,20",
         "--step-seconds", "2", "--repeat", "1", "--no-light", "--mix", "0.1",
         "--targets", "ours,before", "--baseline-ref", "HEAD", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    runs = {r["target"]: r for r in result["runs"]}
    assert runs["ours"]["mix"] == 0.1 and runs["before"]["mix"] == 0
    sent = Counter()
    for step in runs["ours"]["steps"]:
        assert step["loss"] == 0 and step["delivered"] == step["expected"] > 0
        assert set(step["loss_by_type"].values()) == {0} and step["sender_refused"] == {}
        assert step["gaps"] == step["duplicates"] == 0 and step["close_codes"] == {}
        sent.update(step["changes_sent"])
    assert set(sent) == {"edit", "delete", "react"}
    assert not any(step["changes_sent"] for step in runs["before"]["steps"])
    ours = result["summary"]["ours-daphne"]
    assert ours["ratio_vs_before"] is not None
    assert set(ours["p99_vs_before"]) == {"10", "20"}
    assert "against before, p99 ms at the same offered rate" in run.stdout
