"""The fast-path counters, the one warning without a fast path, and daphne's CLI install."""

from __future__ import annotations

import logging
import sys
import types
from collections import Counter

import pytest
from daphne import server as daphne_server

from realtime import daphne_ws, fastpath


class DaphneAdapter:
    pass


class UvicornAdapter:
    pass


@pytest.fixture(autouse=True)
def fresh_counters(monkeypatch) -> None:
    """Counts from zero: other tests in this process write frames too (test_canaries)."""
    monkeypatch.setattr(fastpath, "_counts", Counter())
    monkeypatch.setattr(fastpath, "_warned", False)
    for tally in fastpath._tallies.values():
        monkeypatch.setattr(tally, "n", 0)


def note(kind: str, adapter: object | None) -> None:
    fastpath.note_adapter(kind, adapter, daphne=DaphneAdapter, uvicorn=UvicornAdapter)


def test_each_connection_counts_the_adapter_of_its_server() -> None:
    note("ws", DaphneAdapter())
    note("ws", DaphneAdapter())
    note("sse", UvicornAdapter())
    note("sse", object())  # an adapter the caller did not name
    fastpath.note("ws-daphne-prepared-frames")
    assert fastpath.counts() == {
        "ws-daphne": 2,
        "sse-uvicorn": 1,
        "sse-other": 1,
        "ws-daphne-prepared-frames": 1,
    }


def test_no_adapter_is_counted_and_warned_about_once_per_process(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="realtime.fastpath"):
        note("ws", DaphneAdapter())
        for _ in range(3):
            note("ws", None)
        note("sse", None)
    assert fastpath.counts() == {"ws-daphne": 1, "ws-none": 3, "sse-none": 1}
    (record,) = caplog.records
    assert record.levelname == "WARNING"
    message = record.getMessage()
    assert "chat WebSocket" in message
    for advice in ("fan out much slower", "buffer bound", "manage.py serve", "daphne config.asgi"):
        assert advice in message
    assert "uvicorn --ws websockets-sansio" in message


def test_the_counters_are_a_copy() -> None:
    fastpath.note("ws-none")
    fastpath.counts()["ws-none"] = 99
    assert fastpath.counts() == {"ws-none": 1}


# ---------------------------------------------------------------- daphne's command line


@pytest.fixture
def stock_daphne(monkeypatch) -> None:
    """daphne.server as daphne ships it; the test's changes are undone afterwards."""
    from daphne.ws_protocol import WebSocketFactory

    monkeypatch.setattr(daphne_server, "WebSocketFactory", WebSocketFactory)


def test_the_daphne_cli_gets_the_fast_factory_every_time_it_asks(stock_daphne, monkeypatch):
    monkeypatch.setitem(sys.modules, "daphne.cli", types.ModuleType("daphne.cli"))
    assert daphne_ws.install_if_daphne_cli()
    assert daphne_ws.install_if_daphne_cli()
    assert daphne_server.WebSocketFactory is daphne_ws.ClosingWebSocketFactory


@pytest.mark.parametrize("launcher", daphne_ws.DAPHNE_LAUNCHERS)
def test_daphnes_runserver_gets_it_too(stock_daphne, monkeypatch, launcher):
    for name in daphne_ws.DAPHNE_LAUNCHERS:
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setitem(sys.modules, launcher, types.ModuleType(launcher))
    assert daphne_ws.install_if_daphne_cli()
    assert daphne_server.WebSocketFactory is daphne_ws.ClosingWebSocketFactory


def test_other_servers_keep_daphnes_module_as_it_is(stock_daphne, monkeypatch):
    for name in daphne_ws.DAPHNE_LAUNCHERS:
        monkeypatch.delitem(sys.modules, name, raising=False)
    stock = daphne_server.WebSocketFactory
    assert not daphne_ws.install_if_daphne_cli()
    assert daphne_server.WebSocketFactory is stock


# ---------------------------------------------------------------- GET /api/health/


@pytest.mark.django_db
def test_health_reports_the_fast_path_counters_to_staff(client, django_user_model) -> None:
    fastpath.note("sse-daphne")
    staff = django_user_model.objects.create_user("ops", password="x", is_staff=True)
    client.force_login(staff)
    body = client.get("/api/health/").json()
    assert body["fast_paths"] == {"sse-daphne": 1}
    assert isinstance(body["rss_bytes"], int)
