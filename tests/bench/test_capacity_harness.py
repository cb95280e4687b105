"""The capacity benchmark in a tiny configuration, so it cannot rot."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]


def test_capacity_spreads_connections_over_servers_and_every_one_receives(tmp_path):
    out = tmp_path / "capacity.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.capacity", "--connections", "300", "--baseline", "100",
         "--room-size", "10", "--per-client", "100", "--settle", "0.2", "--idle", "0.5",
         "--bursts", "2", "--publishes", "10000", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "capacity" and result["args"]["servers"] == 2
    assert result["lost"] == result["failed_connects"] == result["closed"] == 0
    baseline, full = result["stages"]
    assert (baseline["sse"], baseline["ws"]) == (50, 50)
    assert (full["sse"], full["ws"]) == (150, 150)
    for stage in (baseline, full):
        assert stage["announcement"]["delivered"] == stage["announcement"]["expected"]
        assert stage["rooms"]["delivered"] == stage["rooms"]["expected"] == stage["ws"]
        for kind in ("announcement", "rooms"):
            d = stage[kind]
            assert 0 < d["p50_ms"] <= d["p99_ms"] <= d["max_ms"]
            burst = d["burst"]
            assert burst["delivered"] == burst["expected"] == 2 * d["expected"]
        assert stage["rss_per_conn_kb"] > 0
    assert "rss_per_conn_kb" in result["ratios"]
    publish = result["redis_publish"]
    assert publish["publishes_per_s"] > 0 and publish["subscribers_after"] == 2
    assert [plan["users"] for plan in result["sizing"]] == [100_000, 1_000_000]
    assert all(plan["cores"] >= 1 and plan["memory_gb"] > 0 for plan in result["sizing"])
    assert "a message in each of 15 rooms -> 150 sockets: 150/150 (0 lost)" in run.stdout
    assert "-> every connection received" in run.stdout
