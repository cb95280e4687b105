"""Session auth for WebSocket connections, in one thread hop.

Channels' AuthMiddlewareStack loads the session and then the user in two hops to its
database thread, which closes its connection after each (a new SQLite connection, ~1 ms,
twice per connect). Here both are read in one call on realtime.db's connect thread, with
Django's own session engine and `django.contrib.auth.get_user` (the same checks as an
HTTP request: backend, session hash, its fallbacks). The scope gets what Channels'
stack gives: `cookies`, `session` and `user` (AnonymousUser when not signed in).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.http.cookie import parse_cookie

from realtime.db import connect_database

Scope = MutableMapping[str, Any]
App = Callable[[Scope, Any, Any], Awaitable[None]]


def _cookies(scope: Scope) -> dict[str, str]:
    for name, value in scope.get("headers", ()):
        if name == b"cookie":
            return parse_cookie(value.decode("latin1"))
    return {}


@connect_database
def _session_and_user(session_key: str | None) -> tuple[Any, Any]:
    store = import_module(settings.SESSION_ENGINE).SessionStore
    session = store(session_key=session_key)
    return session, get_user(SimpleNamespace(session=session))


class SessionAuthMiddleware:
    """Put `cookies`, `session` and `user` in the scope, reading both in one hop."""

    def __init__(self, inner: App) -> None:
        self.inner = inner

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        cookies = _cookies(scope)
        session, user = await _session_and_user(cookies.get(settings.SESSION_COOKIE_NAME))
        await self.inner(dict(scope, cookies=cookies, session=session, user=user), receive, send)
