"""A chat room over a real WebSocket: connect, join, read frames, send."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.support.factories import cookie_for


async def chat(server, slug: str, cookie: str | None, *, origin: str | None = None):
    headers = {"Origin": origin or server.url}
    if cookie:
        headers["Cookie"] = f"sessionid={cookie}"
    return await connect(
        f"{server.ws_url}/ws/chat/{slug}/", additional_headers=headers, open_timeout=5
    )


async def joined(server, slug: str, user) -> tuple[ClientConnection, dict[str, Any]]:
    ws = await chat(server, slug, await cookie_for(user))
    welcome = await frame(ws, "welcome")
    return ws, welcome


async def frame(ws: ClientConnection, kind: str | None = None, timeout: float = 5.0) -> dict:
    """The next frame of `kind`; without one, the next that is not a presence diff."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        data = json.loads(await asyncio.wait_for(ws.recv(), max(0.01, deadline - loop.time())))
        if data["type"] == kind or (kind is None and data["type"] != "presence"):
            return data


async def close_code(ws: ClientConnection, timeout: float = 5.0) -> int:
    """Read until the server closes the socket; its close code."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        assert exc.rcvd is not None, "closed without a close frame"
        return exc.rcvd.code
    raise AssertionError("unreachable")


def send(ws: ClientConnection, **payload: Any):
    return ws.send(json.dumps(payload))
