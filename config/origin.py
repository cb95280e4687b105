"""The WebSocket origin check: a handshake is accepted only from the site's own origin.

Channels' AllowedHostsOriginValidator compares only the Origin's hostname with
ALLOWED_HOSTS, so a page on another port or scheme of the same host (any local service, a
plain-http mirror) could open a chat socket carrying the victim's SameSite=Lax cookie:
same-site is not same-origin. Here the Origin must equal, in scheme, host and port, the
origin the request was made to (its Host header and the scheme the server is reached by,
behind a TLS proxy as Django's SECURE_PROXY_SSL_HEADER says), or one of
CSRF_TRUSTED_ORIGINS, matched the way Django's CSRF check matches them. A handshake
without an Origin is refused: browsers always send one, and the check is about browsers.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http.request import is_same_domain, split_domain_port, validate_host

DEFAULT_PORTS = {"http": "80", "https": "443"}


def normalize_origin(scheme: str, netloc: str) -> str | None:
    """`scheme://host[:port]`, lower-cased, the default port dropped; None if unusable."""
    scheme = scheme.lower()
    if scheme not in DEFAULT_PORTS:
        return None
    host, port = split_domain_port(netloc.lower())
    if not host:
        return None
    if port == DEFAULT_PORTS[scheme]:
        port = ""
    return f"{scheme}://{host}{':' + port if port else ''}"


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {name.decode("latin1"): value.decode("latin1") for name, value in scope["headers"]}


def request_scheme(scope: dict[str, Any], headers: dict[str, str]) -> str:
    """http or https, as Django's HttpRequest.scheme would say for this connection."""
    proxy_header = settings.SECURE_PROXY_SSL_HEADER
    if proxy_header:
        name, secure_value = proxy_header
        # Django names it as in META (HTTP_X_FORWARDED_PROTO); ASGI has x-forwarded-proto.
        value = headers.get(name.removeprefix("HTTP_").replace("_", "-").lower())
        if value is not None:
            return "https" if value.split(",", 1)[0].strip() == secure_value else "http"
    return "https" if scope.get("scheme") in ("wss", "https") else "http"


def site_origin(scope: dict[str, Any], headers: dict[str, str]) -> str | None:
    """The origin this request was made to, if its Host is one of ALLOWED_HOSTS."""
    host = headers.get("host", "")
    domain, _ = split_domain_port(host)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    return normalize_origin(request_scheme(scope, headers), host)


def is_trusted_origin(origin: str) -> bool:
    """In CSRF_TRUSTED_ORIGINS, exactly or by a `scheme://*.domain` wildcard, as Django's
    CSRF check reads that setting."""
    parts = urlsplit(origin)
    for trusted in settings.CSRF_TRUSTED_ORIGINS:
        if "*" in trusted:
            pattern = urlsplit(trusted)
            if pattern.scheme == parts.scheme and is_same_domain(
                parts.netloc, pattern.netloc.replace("*", "", 1)
            ):
                return True
        elif normalize_origin(*urlsplit(trusted)[:2]) == origin:
            return True
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether a WebSocket handshake comes from a page of this site."""
    headers = _headers(scope)
    raw = headers.get("origin")
    if not raw:
        return False
    parts = urlsplit(raw)
    origin = normalize_origin(parts.scheme, parts.netloc)
    if origin is None or parts.path or parts.query or parts.fragment:
        return False
    return origin == site_origin(scope, headers) or is_trusted_origin(origin)


class SameOriginWebSocket:
    """ASGI middleware: refuse (before accept, so daphne answers 403) a WebSocket handshake
    whose Origin is not this site's own."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
