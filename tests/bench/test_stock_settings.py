"""The stock baselines' settings stay out of the product and off databases bench/ did not make."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from bench.throwaway_db import is_throwaway_database, require_throwaway_database
from tests.support.servers import ROOT

SQLITE = "django.db.backends.sqlite3"
POSTGRES = "django.db.backends.postgresql"
BENCH_DIR = Path(tempfile.gettempdir()) / "rtbench-abc123"


@pytest.mark.parametrize(
    "database",
    [
        {"ENGINE": SQLITE, "NAME": BENCH_DIR / "bench.sqlite3"},
        {"ENGINE": POSTGRES, "NAME": "rtbench_abc123"},
    ],
)
def test_databases_bench_creates_are_throwaway(database):
    assert is_throwaway_database(database)


@pytest.mark.parametrize(
    "database",
    [
        {"ENGINE": SQLITE, "NAME": ROOT / "db.sqlite3"},
        {"ENGINE": SQLITE, "NAME": Path("/srv/rtbench-abc123/bench.sqlite3")},
        {"ENGINE": SQLITE, "NAME": BENCH_DIR / "deeper" / "bench.sqlite3"},
        {"ENGINE": POSTGRES, "NAME": "pulse"},
        {"ENGINE": "django.db.backends.mysql", "NAME": "rtbench_abc123"},
    ],
)
def test_other_databases_are_refused(database):
    with pytest.raises(ImproperlyConfigured, match="bench/ server processes only"):
        require_throwaway_database(database, owner="bench.settings")


def test_bench_settings_refuse_to_load_on_a_real_database(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
    }
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode != 0
    assert "bench.settings is for bench/ server processes only" in run.stderr


def test_the_product_configuration_knows_nothing_of_benchmarks():
    mentions = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in sorted((ROOT / "config").glob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if "bench" in line.lower()
    ]
    assert mentions == []
