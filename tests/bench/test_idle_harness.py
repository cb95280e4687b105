"""The idle-connections benchmark in a tiny configuration, so it cannot rot."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]


def test_sse_idle_with_websockets_reports_memory_and_that_every_connection_receives(tmp_path):
    out = tmp_path / "idle.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.sse_idle", "--sse", "20", "--ws", "20", "--room-size", "10",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "sse_idle"
    (only,) = result["runs"]
    assert only["sse"]["connected"] == only["ws"]["connected"] == 20
    assert only["sse"]["failed"] == only["ws"]["failed"] == 0
    assert only["rss_per_conn_kb"] > 0 and len(only["rss_mb"]) == 3
    for kind in ("sse_delivery", "ws_delivery"):
        delivery = only[kind]
        assert delivery["all"] and delivery["delivered"] == delivery["expected"] == 20
        assert delivery["open"] == 20 and delivery["closed"] == 0
        assert 0 < delivery["p50_ms"] <= delivery["p99_ms"] <= delivery["max_ms"]
    summary = result["summary"]
    assert summary["sse_all_delivered"] and summary["ws_all_delivered"]
    assert "one message in each of 2 rooms: delivered 20/20 (all)" in run.stdout
