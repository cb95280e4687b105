"""The WebSocket origin check, case by case: only the site's own origin, exactly."""

from __future__ import annotations

import pytest

from config.origin import origin_allowed

PROXY = ("HTTP_X_FORWARDED_PROTO", "https")


def scope(origin: str | None, *, host: str = "127.0.0.1:8765", scheme: str = "ws", **extra: str):
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    headers += [(k.encode(), v.encode()) for k, v in extra.items()]
    return {"type": "websocket", "scheme": scheme, "headers": headers}


@pytest.mark.parametrize(
    ("origin", "host", "scheme", "allowed"),
    [
        ("http://127.0.0.1:8765", "127.0.0.1:8765", "ws", True),  # the page's own origin
        ("HTTP://127.0.0.1:8765", "127.0.0.1:8765", "ws", True),  # case does not matter
        ("http://127.0.0.1:9999", "127.0.0.1:8765", "ws", False),  # another port, same host
        ("http://127.0.0.1", "127.0.0.1:8765", "ws", False),  # the default port is another
        ("https://127.0.0.1:8765", "127.0.0.1:8765", "ws", False),  # another scheme
        ("http://localhost:8765", "127.0.0.1:8765", "ws", False),  # another host
        ("http://evil.example", "127.0.0.1:8765", "ws", False),
        ("https://localhost", "localhost", "wss", True),
        ("https://localhost:443", "localhost", "wss", True),  # the default port, spelled out
        ("http://localhost", "localhost", "wss", False),  # a plain-http page on a TLS site
        ("http://evil.example:8765", "evil.example:8765", "ws", False),  # not ALLOWED_HOSTS
        ("null", "127.0.0.1:8765", "ws", False),  # sandboxed frames, file: pages
        ("http://127.0.0.1:8765/path", "127.0.0.1:8765", "ws", False),  # not an origin
        ("", "127.0.0.1:8765", "ws", False),
        (None, "127.0.0.1:8765", "ws", False),  # no Origin: refused, as before
    ],
)
def test_only_the_sites_own_origin_is_accepted(settings, origin, host, scheme, allowed):
    settings.ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
    settings.SECURE_PROXY_SSL_HEADER = None
    assert origin_allowed(scope(origin, host=host, scheme=scheme)) is allowed


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        ("https://app.example.com", True),
        ("https://app.example.com:443", True),
        ("http://app.example.com", False),  # the trusted origin is https
        ("https://app.example.com:8443", False),
        ("https://a.sub.example.com", True),  # https://*.sub.example.com
        ("https://sub.example.com", True),
        ("http://a.sub.example.com", False),
        ("https://evilsub.example.com", False),
    ],
)
def test_csrf_trusted_origins_are_accepted_exactly(settings, origin, allowed):
    settings.ALLOWED_HOSTS = ["pulse.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.sub.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = None
    assert origin_allowed(scope(origin, host="pulse.example.com")) is allowed


@pytest.mark.parametrize(
    ("proxy_header", "forwarded", "origin", "allowed"),
    [
        (PROXY, "https", "https://pulse.example.com", True),
        (PROXY, "https", "http://pulse.example.com", False),
        (PROXY, "http", "https://pulse.example.com", False),
        (PROXY, None, "http://pulse.example.com", True),  # no header: the connection's scheme
        (PROXY, "https, http", "https://pulse.example.com", True),  # the first value counts
        (None, "https", "https://pulse.example.com", False),  # not configured: not honoured
        (None, "https", "http://pulse.example.com", True),
    ],
)
def test_x_forwarded_proto_counts_only_when_secure_proxy_ssl_header_is_set(
    settings, proxy_header, forwarded, origin, allowed
):
    settings.ALLOWED_HOSTS = ["pulse.example.com"]
    settings.SECURE_PROXY_SSL_HEADER = proxy_header
    extra = {"x-forwarded-proto": forwarded} if forwarded else {}
    assert origin_allowed(scope(origin, host="pulse.example.com", **extra)) is allowed
