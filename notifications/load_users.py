"""Users with logged-in sessions, made in bulk for load runs (compare_transports, bench/)."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.auth.models import User
from django.contrib.sessions.backends.db import SessionStore
from django.contrib.sessions.models import Session
from django.utils import timezone
from django.utils.crypto import get_random_string

BACKEND = "django.contrib.auth.backends.ModelBackend"


def create_users(count: int, prefix: str) -> list[tuple[int, str]]:
    """Create `count` users with one logged-in session each: [(user_id, session_key)].

    bulk_create all the way: no password hashing, no signals, one query per 500 rows. The
    sessions are database rows, so the servers see them whatever SESSION_ENGINE caches.
    """
    start = User.objects.filter(username__startswith=prefix).count()
    names = [f"{prefix}{start + i}" for i in range(count)]
    User.objects.bulk_create(
        [User(username=n, password="!load-unusable") for n in names], batch_size=500
    )
    users = list(User.objects.filter(username__in=names).order_by("id"))
    keys = create_sessions(users)
    return [(user.pk, key) for user, key in zip(users, keys, strict=True)]


def create_sessions(users: list[User]) -> list[str]:
    """One logged-in session per user, as a login would make it, written in bulk: the
    session keys, in the users' order."""
    store = SessionStore()
    expire = timezone.now() + timedelta(days=1)
    keys, rows = [], []
    for user in users:
        key = get_random_string(32, "abcdefghijklmnopqrstuvwxyz0123456789")
        data = {
            SESSION_KEY: str(user.pk),
            BACKEND_SESSION_KEY: BACKEND,
            HASH_SESSION_KEY: user.get_session_auth_hash(),
        }
        rows.append(Session(session_key=key, session_data=store.encode(data), expire_date=expire))
        keys.append(key)
    Session.objects.bulk_create(rows, batch_size=500)
    return keys


def delete_users(users: list[tuple[int, str]]) -> None:
    """Delete users made by create_users, their sessions and (by cascade) notifications."""
    Session.objects.filter(session_key__in=[key for _, key in users]).delete()
    User.objects.filter(pk__in=[user_id for user_id, _ in users]).delete()
