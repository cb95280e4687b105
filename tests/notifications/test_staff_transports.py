"""/staff/transports/: the last compare_transports result as SVG charts, for staff only."""

import json

import pytest
from django.test import Client

from tests.support.factories import make_user

pytestmark = pytest.mark.django_db

ROW = {
    "sent": 60,
    "delivered": 60,
    "lost": 0,
    "duplicates": 0,
    "requests_per_s": 1.0,
    "connections": 10,
}
RESULT = {
    "created_at": "2026-12-05T21:00:00+00:00",
    "server": "local daphne",
    "clients": 10,
    "rate": 20.0,
    "seconds": 3.0,
    "short_poll_interval": 1.0,
    "load_average": [1.0, 1.0, 1.0],
    "cpus": 2,
    "transports": [
        {**ROW, "transport": t, "label": label, "p50_ms": p50, "p99_ms": p50 * 3,
         "bytes_per_event": size, "cpu_us_per_delivery": cpu}
        for t, label, p50, size, cpu in [
            ("websocket", "WebSocket", 5.0, 230, 600),
            ("sse", "SSE", 6.0, 200, 500),
            ("longpoll", "Long polling", 12.0, 990, 6000),
            ("shortpoll", "Short polling", 550.0, 630, 5000),
        ]
    ],
}  # fmt: skip


@pytest.fixture
def last_result(tmp_path, settings):
    settings.TRANSPORT_COMPARISON_FILE = tmp_path / "last.json"
    return settings.TRANSPORT_COMPARISON_FILE


@pytest.fixture
def staff_client() -> Client:
    client = Client()
    client.force_login(make_user("sam", is_staff=True))
    return client


def test_staff_see_the_last_result_as_svg_bar_charts(staff_client, last_result):
    last_result.write_text(json.dumps(RESULT))
    response = staff_client.get("/staff/transports/")
    assert response.status_code == 200
    html = response.content.decode()
    assert html.count('<figure class="chart">') == 4  # p50, p99, bytes/event, CPU/delivery
    assert html.count('class="bar bar-shortpoll"') == 4
    assert "Short polling" in html and "550.0 ms" in html
    assert "style=" not in html.split("<main", 1)[-1]  # CSP: styles only from static files
    assert "notifications/transports.css" in html


def test_a_result_without_server_cpu_has_no_cpu_chart(staff_client, last_result):
    rows = [{**row, "cpu_us_per_delivery": None} for row in RESULT["transports"]]
    last_result.write_text(json.dumps({**RESULT, "server": "http://x:8000", "transports": rows}))
    html = staff_client.get("/staff/transports/").content.decode()
    assert html.count('<figure class="chart">') == 3
    assert "Server CPU per delivery" not in html


def test_staff_see_an_empty_state_before_the_first_run(staff_client, last_result):
    response = staff_client.get("/staff/transports/")
    assert response.status_code == 200
    assert b'id="transports-empty"' in response.content
    assert b"manage.py compare_transports" in response.content


def test_a_damaged_result_file_shows_the_empty_state(staff_client, last_result):
    last_result.write_text("{not json")
    assert b'id="transports-empty"' in staff_client.get("/staff/transports/").content


def test_users_who_are_not_staff_are_sent_to_log_in(client, alice, last_result):
    last_result.write_text(json.dumps(RESULT))
    assert client.get("/staff/transports/").status_code == 302
    client.force_login(alice)
    response = client.get("/staff/transports/")
    assert response.status_code == 302
    assert "/login/" in response["Location"]
