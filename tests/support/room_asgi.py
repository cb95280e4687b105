"""Tests only: one room of sockets fanned out by the hub's fan-out (realtime.outbox), without
Redis or auth.

tests/e2e/test_daphne_send_path.py serves it with config.daphne_server, so that the
frames a test checks went through the same hub, outboxes and daphne send path as a chat
room's, with text chosen by the test: a socket that sends `fan <i> <j> ...` makes the
hub write FRAMES[i], FRAMES[j], ... to every member as one batch, the way it writes
what arrived from Redis together. The same str objects go to every member, every time.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from realtime.outbox import Outbox, fan_out  # noqa: E402

FRAMES = (
    "plain ASCII",
    "non-ASCII: héllo wörld, ☃, 🎉, 日本語, and a NUL-free end",
    "x" * 300,  # a 16-bit length field
    "é" * 20_000,  # 40,000 bytes of UTF-8: past the held-run size, under 64 KiB
    "🎉" * 16_000,  # 64,000 bytes of UTF-8, four per character
)
_ids = itertools.count(1)
_members: set[Outbox] = set()


def frames(command: str) -> list[tuple[dict[str, str], int, int | None]]:
    return [
        ({"type": "websocket.send", "text": FRAMES[int(i)]}, len(FRAMES[int(i)]), None)
        for i in command.split()[1:]
    ]


async def application(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "websocket":
        return
    outbox: Outbox | None = None
    while True:
        event = await receive()
        if event["type"] == "websocket.connect":
            await send({"type": "websocket.accept"})
            outbox = Outbox(send, user_id=next(_ids))
            _members.add(outbox)
        elif event["type"] == "websocket.receive" and event.get("text", "").startswith("fan"):
            await fan_out(tuple(_members), frames(event["text"]))
        elif event["type"] == "websocket.disconnect":
            if outbox is not None:
                _members.discard(outbox)
                outbox.gone()
            return
