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
    from notifications.load_users import create_sessions

    return create_sessions(users)


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
