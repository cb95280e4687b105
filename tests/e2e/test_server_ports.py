"""The test harness's servers: a port taken between free_port() and the bind is not a failure."""

from __future__ import annotations

import socket

import pytest

from tests.support.servers import RUN_DIR, Server

# Starts two server processes of its own (one fails to bind): slow tier.
pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_a_server_whose_picked_port_was_taken_listens_on_another(redis_server):
    server = Server(redis_url=redis_server.url, log_path=RUN_DIR / "server-port-taken.log")
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))  # bound, not listening: as a client socket holds it
        taken = squatter.getsockname()[1]
        server.port = server._picked_port = taken  # as if someone bound it after free_port()
        server.start()
        try:
            assert server.port != taken
            with socket.create_connection((server.host, server.port), timeout=5):
                pass
        finally:
            server.stop()
