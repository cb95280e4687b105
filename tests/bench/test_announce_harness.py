"""The admin announcement benchmark in a tiny configuration, so it cannot rot."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]


def test_announce_publishes_through_the_admin_and_every_client_receives(tmp_path):
    out = tmp_path / "announce.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.announce", "--clients", "20", "--repeat", "1",
         "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["benchmark"] == "announce"
    assert result["connections"]["connected"] == 20
    (only,) = result["runs"]
    for path in ("admin", "service"):
        delivery = only[path]
        assert delivery["all"] and delivery["delivered"] == delivery["expected"] == 20
        assert delivery["open"] == 20
        assert 0 < delivery["p50_ms"] <= delivery["p95_ms"] <= delivery["p99_ms"]
    assert only["admin"]["response_ms"] > 0
    assert result["summary"]["p99_ratio_admin_vs_service"] > 0
    assert "admin    delivered 20/20 (all)" in run.stdout
