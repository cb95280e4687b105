"""Endpoints for operators: `GET /healthz`, `GET /readyz` and `GET /metrics`.

/healthz (alive: the event loop answers) and /readyz (database and Redis reachable,
realtime.probes) are answered here, in front of Django: no middleware, session or host
check, so a load balancer probing by address gets its answer cheaply, and an SSL redirect
never sends a plain-HTTP probe elsewhere. They say nothing secret and need no login.

/metrics (realtime.metrics) is not public. A request carrying
`Authorization: Bearer <METRICS_TOKEN>` is answered here too (a scraper on the host's
address, like the probes); a wrong or unexpected token gets 401. Without that header the
request goes through Django (`metrics_view`), which answers staff sessions and refuses
everyone else with 403. Unset METRICS_TOKEN means staff only.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from realtime import metrics, probes

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

HEALTHZ, READYZ, METRICS = "/healthz", "/readyz", "/metrics"
METHODS = ("GET", "HEAD")
JSON = b"application/json"


class OpsEndpoints:
    """ASGI middleware around the HTTP app: answers the probes and token-bearing scrapes."""

    def __init__(self, app: App) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path") if scope["type"] == "http" else None
        if path in (HEALTHZ, READYZ):
            await self._probe(path, scope, send)
        elif path == METRICS and _bearer(scope) is not None:
            await self._scrape(scope, send)
        else:
            await self.app(scope, receive, send)

    async def _probe(self, path: str, scope: Scope, send: Send) -> None:
        if scope["method"] not in METHODS:
            await _not_allowed(scope, send)
            return
        if path == HEALTHZ:
            await _json(scope, send, 200, {"status": "ok"})
            return
        failed = await probes.unready()
        if failed:
            body = {"status": "unavailable", "failed": sorted(failed)}
            await _json(scope, send, 503, body)
        else:
            await _json(scope, send, 200, {"status": "ok"})

    async def _scrape(self, scope: Scope, send: Send) -> None:
        if scope["method"] not in METHODS:
            await _not_allowed(scope, send)
            return
        if not token_matches(_bearer(scope) or ""):
            headers = [(b"www-authenticate", b'Bearer realm="metrics"')]
            await _json(scope, send, 401, {"error": "invalid metrics token"}, headers)
            return
        body = await asyncio.to_thread(metrics.render)  # reads every process's file
        content_type = metrics.CONTENT_TYPE_LATEST.encode()
        await _respond(scope, send, 200, content_type, body)


def token_matches(given: str) -> bool:
    """Whether `given` is METRICS_TOKEN (never when none is set), in constant time."""
    token = settings.METRICS_TOKEN
    return bool(token) and hmac.compare_digest(given.encode(), token.encode())


def _bearer(scope: Scope) -> str | None:
    """The token of an `Authorization: Bearer` header, None without one."""
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else None
    return None


async def _not_allowed(scope: Scope, send: Send) -> None:
    body = {"error": f"method {scope['method']} not allowed"}
    await _json(scope, send, 405, body, [(b"allow", ", ".join(METHODS).encode())])


async def _json(
    scope: Scope,
    send: Send,
    status: int,
    body: dict[str, Any],
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    await _respond(scope, send, status, JSON, json.dumps(body).encode(), headers)


async def _respond(
    scope: Scope,
    send: Send,
    status: int,
    content_type: bytes,
    body: bytes,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    head = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *(headers or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})


@csrf_exempt  # it changes nothing: a POST gets the same 405 as on the token path
def metrics_view(request: HttpRequest) -> HttpResponse:
    """`/metrics` for a staff session (a token-bearing scrape never gets here)."""
    if request.method not in METHODS:
        response = JsonResponse({"error": f"method {request.method} not allowed"}, status=405)
        response["Allow"] = ", ".join(METHODS)
        return response
    if not (request.user.is_authenticated and request.user.is_staff):
        return JsonResponse({"error": "staff session or metrics token required"}, status=403)
    return HttpResponse(metrics.render(), content_type=metrics.CONTENT_TYPE_LATEST)
