"""Test harness: a private Redis for the whole run, named users, real servers on demand.

Everything here is per process: each pytest-xdist worker (`bin/test --fast`) has its own
RUN_DIR, Redis, SQLite file (or PostgreSQL database, suffixed by pytest-django) and servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections
from django.test import Client

from config.redis_server import EmbeddedRedis
from tests.support import content_types
from tests.support.factories import make_user
from tests.support.migrations import migrate_to_latest
from tests.support.sentinel import SentinelGroup
from tests.support.servers import RUN_DIR, UNCAPPED, Server
from tests.support.smtp import SmtpSink

_redis = EmbeddedRedis(RUN_DIR / "redis.sock")


def pytest_configure(config: pytest.Config) -> None:
    _redis.start()
    os.environ["REDIS_URL"] = _redis.url
    settings.REDIS_URL = _redis.url
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # A file, so that server processes started by the tests share the test database.
        settings.DATABASES["default"]["TEST"]["NAME"] = str(RUN_DIR / "test.sqlite3")


def pytest_unconfigure(config: pytest.Config) -> None:
    _redis.stop()


@pytest.fixture
def pubsub(_redis_is_up) -> Iterator[redis.client.PubSub]:
    """Subscribed to every group of the channel layer; read it with tests.support.published."""
    from tests.support.published import GROUPS_PATTERN

    client = redis.Redis.from_url(settings.REDIS_URL)
    ps = client.pubsub()
    ps.psubscribe(GROUPS_PATTERN)
    assert ps.get_message(timeout=1)["type"] == "psubscribe"
    yield ps
    ps.close()
    client.close()


@pytest.fixture(scope="session")
def redis_server() -> EmbeddedRedis:
    return _redis


@pytest.fixture(autouse=True)
def _redis_is_up(redis_server: EmbeddedRedis) -> None:
    """A test that stopped Redis must not leave it down for the next one."""
    if redis_server.process is None or redis_server.process.poll() is not None:
        redis_server.start()


@pytest.fixture(autouse=True)
def _clean_chat_state(_redis_is_up) -> None:
    """Room and user ids repeat between tests; their presence and rate limits must not."""
    from realtime.redis_state import KEY_PREFIX

    client = redis.Redis.from_url(settings.REDIS_URL)
    try:
        keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _close_async_test_connections() -> Iterator[None]:
    """Close the DB connection that sync_to_async calls in async tests opened in their thread.

    Left open, it keeps PostgreSQL from dropping the test database at the end of the run.
    """
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def charlie(db):
    return make_user("charlie")


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker, redis_server) -> Iterator[Server]:
    """One real daphne process for the whole run (tests reach it over TCP)."""
    with django_db_blocker.unblock():
        srv = Server(
            redis_url=redis_server.url, log_path=RUN_DIR / "server-1.log", env=UNCAPPED
        ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def second_server(django_db_setup, django_db_blocker, redis_server) -> Iterator[Server]:
    """Another server process on the same Redis and database."""
    with django_db_blocker.unblock():
        srv = Server(
            redis_url=redis_server.url, log_path=RUN_DIR / "server-2.log", env=UNCAPPED
        ).start()
    yield srv
    srv.stop()


@pytest.fixture
def sentinel_redis() -> Iterator[SentinelGroup]:
    """A primary, a replica and three sentinels of their own; `.url` points Pulse at them."""
    group = SentinelGroup(RUN_DIR / f"sentinel-{uuid.uuid4().hex[:8]}").start()
    yield group
    group.stop()


@pytest.fixture(autouse=True)
def _stable_content_type_ids(request: pytest.FixtureRequest, django_db_blocker) -> None:
    """The session's server processes cache content types by id; a flush renumbers them
    (tests/support/content_types.py)."""
    marker = request.node.get_closest_marker("django_db")
    transactional = (marker is not None and marker.kwargs.get("transaction")) or (
        "transactional_db" in request.fixturenames
    )
    if transactional:
        with django_db_blocker.unblock():
            content_types.restore_ids()


@pytest.fixture
def back_to_latest() -> Iterator[None]:
    """For a test that migrates the database back: every migration applied again after it."""
    yield
    migrate_to_latest()


@pytest.fixture
def smtp(settings) -> Iterator[SmtpSink]:
    """A real SMTP server on a free port, and Django's email settings pointing at it."""
    sink = SmtpSink().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", sink.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield sink
    sink.stop()
