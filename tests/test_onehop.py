"""realtime.onehop: /events/ runs Django's middleware and view in one hop on the connect
thread. It builds on ASGIHandler's read_body, create_request and BaseHandler.get_response:
these tests fail loudly if a Django upgrade changes them."""

from __future__ import annotations

import json
import threading

import pytest
from asgiref.testing import ApplicationCommunicator
from django.core.signals import request_started

from config.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def http_scope(path: str, cookie: str = "") -> dict:
    headers = [(b"host", b"127.0.0.1")]
    if cookie:
        headers.append((b"cookie", cookie.encode()))
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": headers, "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
    }  # fmt: skip


async def get(path: str, cookie: str = "") -> tuple[dict, list[dict], list[str]]:
    """The response start, its body messages, and the threads request_started ran on."""
    threads: list[str] = []

    def started(**kwargs: object) -> None:
        threads.append(threading.current_thread().name)

    request_started.connect(started, dispatch_uid="test_onehop")
    try:
        app = ApplicationCommunicator(application, http_scope(path, cookie))
        await app.send_input({"type": "http.request", "body": b"", "more_body": False})
        start = await app.receive_output(timeout=10)
        bodies = [await app.receive_output(timeout=10)]
        while bodies[-1].get("more_body"):
            bodies.append(await app.receive_output(timeout=10))
        await app.wait(timeout=5)
    finally:
        request_started.disconnect(dispatch_uid="test_onehop")
    return start, bodies, threads


async def test_events_run_in_one_hop_on_the_connect_thread_with_django_middleware():
    start, bodies, threads = await get("/events/")
    assert start["status"] == 403
    assert json.loads(b"".join(b["body"] for b in bodies)) == {"error": "authentication required"}
    headers = {name.lower(): value for name, value in start["headers"]}
    assert headers[b"content-type"] == b"application/json"
    assert b"content-security-policy" in headers  # the middleware chain ran
    assert len(threads) == 1 and threads[0].startswith("connect-db")


async def test_other_paths_take_djangos_own_handler():
    start, _, threads = await get("/api/health/")
    assert start["status"] == 403  # anonymous, from the same view code, on another path
    assert len(threads) == 1 and not threads[0].startswith("connect-db")
