"""WebSocket clients for consumer tests (chat, `/ws/events/`): the full ASGI stack, no network."""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from config.asgi import application
from tests.support.factories import session_cookie

ORIGIN = "http://testserver"


async def _headers(user: Any, origin: str | None, cookie: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"host", b"testserver")]
    if origin:
        headers.append((b"origin", origin.encode()))
    if user is not None and cookie is None:
        cookie = await sync_to_async(session_cookie)(user)
    if cookie:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    return headers


async def open_socket(
    slug: str, user: Any = None, *, origin: str | None = ORIGIN, cookie: str | None = None
) -> WebsocketCommunicator:
    headers = await _headers(user, origin, cookie)
    return WebsocketCommunicator(application, f"/ws/chat/{slug}/", headers=headers)


async def events_socket(user: Any, *names: str) -> WebsocketCommunicator:
    """A connected `/ws/events/?channel=...` socket of `user` (a session of its own)."""
    query = "&".join(f"channel={name}" for name in names)
    headers = await _headers(user, ORIGIN, None)
    socket = WebsocketCommunicator(application, f"/ws/events/?{query}", headers=headers)
    connected, code = await socket.connect(timeout=5)
    assert connected, f"refused with {code}"
    return socket


async def join(slug: str, user: Any, **kw: Any) -> tuple[WebsocketCommunicator, dict[str, Any]]:
    """Connect, expect acceptance and return the socket with its welcome frame."""
    socket = await open_socket(slug, user, **kw)
    connected, code = await socket.connect(timeout=5)
    assert connected, f"refused with {code}"
    welcome = await socket.receive_json_from(timeout=5)
    assert welcome["type"] == "welcome", welcome
    return socket, welcome


async def next_frame(
    socket: WebsocketCommunicator, kind: str | None = None, *, timeout: float = 3.0
) -> dict[str, Any]:
    """The next frame of `kind`; without one, the next frame that is not a presence diff
    (those arrive whenever the room's batch is flushed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await socket.receive_json_from(timeout=max(0.01, deadline - loop.time()))
        if frame["type"] == kind or (kind is None and frame["type"] != "presence"):
            return frame


async def frames_until(
    socket: WebsocketCommunicator, predicate: Any, *, timeout: float = 3.0
) -> list[dict[str, Any]]:
    """Every frame up to and including the first one matching `predicate`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen = []
    while True:
        frame = await socket.receive_json_from(timeout=max(0.01, deadline - loop.time()))
        seen.append(frame)
        if predicate(frame):
            return seen


async def closed_with(socket: WebsocketCommunicator, *, timeout: float = 3.0) -> int:
    """Skip frames until the server closes; return the close code."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        output = await socket.receive_output(timeout=max(0.01, deadline - loop.time()))
        if output["type"] == "websocket.close":
            return output.get("code", 1000)
