"""`manage.py compare_transports` end to end: its own daphne, the four transports, nothing
lost, the JSON it writes and the staff page that reads it; bad arguments refused."""

import json

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from tests.support.factories import make_user
from tests.support.servers import run_manage

TRANSPORTS = ["websocket", "sse", "longpoll", "shortpoll"]
ROW_KEYS = {
    "transport", "label", "sent", "delivered", "lost", "duplicates", "p50_ms", "p99_ms",
    "bytes_per_event", "requests_per_s", "cpu_us_per_delivery", "connections",
}  # fmt: skip


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_compare_transports_measures_all_four_and_loses_nothing(
    redis_server, tmp_path, monkeypatch, client
):
    last = tmp_path / "last.json"
    monkeypatch.setenv("TRANSPORT_COMPARISON_FILE", str(last))
    out = tmp_path / "out.json"
    args = ["compare_transports", "--clients", "10", "--seconds", "3", "--json", str(out)]
    done = run_manage(*args, redis_url=redis_server.url, timeout=150)
    assert done.returncode == 0, done.stderr

    result = json.loads(out.read_text())
    assert json.loads(last.read_text()) == result
    assert {"created_at", "clients", "rate", "seconds", "transports"} <= result.keys()
    assert [row["transport"] for row in result["transports"]] == TRANSPORTS
    for row in result["transports"]:
        assert set(row) == ROW_KEYS
        assert row["lost"] == row["duplicates"] == 0
        assert row["delivered"] == row["sent"] == 60  # 20 a second for 3 s
        assert row["bytes_per_event"] > 0 and row["cpu_us_per_delivery"] > 0
        assert row["connections"] == 10
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 2 + 4 and lines[0].startswith("transport")
    assert all(line.split("|")[-1].strip() == "0" for line in lines[2:])  # lost
    assert "Short polling" in done.stderr and "delivered" in done.stderr  # the progress bar
    assert not User.objects.filter(username__startswith="compare-transports-").exists()

    client.force_login(make_user("sam", is_staff=True))
    with pytest.MonkeyPatch.context() as patch:
        from django.conf import settings

        patch.setattr(settings, "TRANSPORT_COMPARISON_FILE", last)
        page = client.get("/staff/transports/")
    assert page.status_code == 200 and page.content.count(b'<figure class="chart">') == 4


@pytest.mark.slow
@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_compare_transports_measures_a_server_given_by_url(server, tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSPORT_COMPARISON_FILE", str(tmp_path / "last.json"))
    out = tmp_path / "out.json"
    args = ["--url", server.url, "--clients", "3", "--rate", "5", "--seconds", "1"]
    done = run_manage("compare_transports", *args, "--json", str(out), redis_url=server.redis_url)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["server"] == server.url
    for row in result["transports"]:
        assert row["lost"] == row["duplicates"] == 0 and row["delivered"] == 5
        assert row["cpu_us_per_delivery"] is None  # not a process of this host to read
    assert "—" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--clients", "0"], "--clients must be 1 to"),
        (["--rate", "0"], "--rate must be over 0"),
        (["--seconds", "0.5"], "--seconds must be 1 to"),
        (["--url", "ftp://example.com"], "--url must look like http://host:port"),
        (["--url", "http://127.0.0.1:8000/app/"], "--url must look like"),
        (["--port", "80"], "--port must be 1024 to 65535"),
    ],
)
def test_bad_arguments_are_refused_with_a_message(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("compare_transports", *args)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_bad_arguments_exit_non_zero_without_a_traceback(redis_server):
    done = run_manage("compare_transports", "--clients", "-3", redis_url=redis_server.url)
    assert done.returncode != 0
    assert "--clients must be 1 to" in done.stderr and "Traceback" not in done.stderr
    done = run_manage("compare_transports", "--rate", "fast", redis_url=redis_server.url)
    assert done.returncode != 0 and "invalid float value" in done.stderr
