"""Users and signed-in sessions, made the fast way for tests with many clients."""

from __future__ import annotations

from asgiref.sync import sync_to_async
from django.test import Client

PASSWORD = "correct-horse-battery-staple"


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


def make_user(username: str, **extra):
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_user(
        username=username, password=PASSWORD, email=f"{username}@example.com", **extra
    )


def session_cookie(user) -> str:
    """Log `user` in and return the session id a browser would hold."""
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


cookie_for = sync_to_async(session_cookie)
