"""The notification email benchmark at its quick size, so it cannot rot (not a test of speed)."""

import json
import subprocess
import sys

import pytest

from tests.support.servers import ROOT

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_email_bench_reports_rates_query_plans_and_digest_memory(tmp_path):
    out = tmp_path / "notification_emails.json"
    run = subprocess.run(
        [sys.executable, "-m", "bench.notification_emails", "--quick", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["send"]["emails"] == 300 and result["send"]["worker_per_s"] > 0
    assert result["send"]["send_mail_loop_per_s"] > 0
    assert [q["rows"] for q in result["queries"]] == [2000, 20_000]
    for queries in result["queries"]:
        assert "notif_email_due" in queries["claim"]["plan"]
        assert "PRIMARY KEY" in queries["scan"]["plan"]
    assert [result["digests"][k]["users"] for k in ("tenth", "all")] == [100, 1000]
    assert result["digests"]["all"]["max_rss_mb"] > 0
    assert f"written to {out}" in run.stdout
