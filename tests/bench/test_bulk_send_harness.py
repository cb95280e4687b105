"""The bulk-send benchmark in a tiny configuration, so it cannot rot (benchmarks are not tests)."""

import json
import re
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.slow,
]


def test_bulk_send_harness_prints_both_rates_and_the_ratio_and_writes_its_json(tmp_path):
    out = tmp_path / "bulk_send.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.bulk_send", "--users", "300", "--naive-sample", "50",
         "--batch-size", "100", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert re.search(r"ratio:\s+[0-9.]+x", run.stdout)
    assert f"written to {out}" in run.stdout
    result = json.loads(out.read_text())
    assert (result["users"], result["batch_size"]) == (300, 100)
    assert result["naive_per_s"] > 0 and result["bulk_delivered_per_s"] > 0
    assert result["notify_delivered_per_s"] > 0
    assert re.search(r"notify\(\) many users:\s+[0-9,]+ notifications/s", run.stdout)
    assert result["ratio"] == pytest.approx(
        result["bulk_delivered_per_s"] / result["naive_per_s"], rel=0.05
    )
    assert result["command_summary"].startswith("sent 300 notifications to 300 users")
