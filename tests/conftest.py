"""Test harness: a private Redis for the whole run, named users, real servers on demand."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from asgiref.sync import SyncToAsync
from django.conf import settings
from django.db import connections
from django.test import Client

from config.redis_server import EmbeddedRedis
from tests.servers import Server

PASSWORD = "correct-horse-battery-staple"
_RUN_DIR = Path(tempfile.mkdtemp(prefix="rt-"))
_redis = EmbeddedRedis(_RUN_DIR / "redis.sock")


def pytest_configure(config: pytest.Config) -> None:
    _redis.start()
    os.environ["REDIS_URL"] = _redis.url
    settings.REDIS_URL = _redis.url
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        # A file, so that server processes started by the tests share the test database.
        settings.DATABASES["default"]["TEST"]["NAME"] = str(_RUN_DIR / "test.sqlite3")


def pytest_unconfigure(config: pytest.Config) -> None:
    _redis.stop()


@pytest.fixture
def pubsub(_redis_is_up) -> Iterator[redis.client.PubSub]:
    """Subscribed to every group of the channel layer; read it with tests.published."""
    from tests.published import GROUPS_PATTERN

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


def make_users(count: int, prefix: str) -> list:
    """`count` users named <prefix>0000…, created in one query (sessions come separately)."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password

    User = get_user_model()
    password = make_password("unused-password-123")
    User.objects.bulk_create(
        User(username=f"{prefix}{i:04d}", password=password) for i in range(count)
    )
    return list(User.objects.filter(username__startswith=prefix).order_by("id"))


def make_sessions(users: list) -> list[str]:
    """One signed-in session per user, as `session_cookie` gives, written in bulk: for
    tests with a thousand clients, where a login each would take seconds."""
    from datetime import timedelta

    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.utils import timezone
    from django.utils.crypto import get_random_string

    store = SessionStore()
    expire = timezone.now() + timedelta(days=1)
    backend = "django.contrib.auth.backends.ModelBackend"
    keys = [get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789") for _ in users]
    Session.objects.bulk_create(
        (
            Session(
                session_key=key,
                session_data=store.encode(
                    {
                        SESSION_KEY: str(user.pk),
                        BACKEND_SESSION_KEY: backend,
                        HASH_SESSION_KEY: user.get_session_auth_hash(),
                    }
                ),
                expire_date=expire,
            )
            for key, user in zip(keys, users, strict=True)
        ),
        batch_size=500,
    )
    return keys


@pytest.fixture(autouse=True)
def _close_async_test_connections() -> Iterator[None]:
    """Close the DB connection that sync_to_async calls in async tests opened in their thread.

    Left open, it keeps PostgreSQL from dropping the test database at the end of the run.
    """
    yield
    SyncToAsync.single_thread_executor.submit(connections.close_all).result()


def make_user(username: str, **extra):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.com", **extra
    )


@pytest.fixture
def alice(db):
    return make_user("alice")


@pytest.fixture
def bob(db):
    return make_user("bob")


@pytest.fixture
def charlie(db):
    return make_user("charlie")


def session_cookie(user) -> str:
    """Log `user` in and return the session id a browser would hold."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def alice_client(alice) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    return client


# The shared servers let one user hold many connections: fault and fan-out tests open
# hundreds for alice. The caps themselves are tested on servers of their own
# (tests/e2e/test_connection_caps.py).
UNCAPPED = {"SSE_STREAMS_PER_USER": "100000", "CHAT_SOCKETS_PER_USER": "100000"}


@pytest.fixture(scope="session")
def server(django_db_setup, django_db_blocker, redis_server) -> Iterator[Server]:
    """One real daphne process for the whole run (tests reach it over TCP)."""
    with django_db_blocker.unblock():
        srv = Server(
            redis_url=redis_server.url, log_path=_RUN_DIR / "server-1.log", env=UNCAPPED
        ).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def second_server(django_db_setup, django_db_blocker, redis_server) -> Iterator[Server]:
    """Another server process on the same Redis and database."""
    with django_db_blocker.unblock():
        srv = Server(
            redis_url=redis_server.url, log_path=_RUN_DIR / "server-2.log", env=UNCAPPED
        ).start()
    yield srv
    srv.stop()
