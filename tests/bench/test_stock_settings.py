"""The stock baselines refuse every database that bench/ did not create."""

import tempfile
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from bench.throwaway_db import is_throwaway_database, require_throwaway_database
from tests.servers import ROOT

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
