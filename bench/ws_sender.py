"""The WebSocket benchmark sender: chat messages at a fixed rate, the send time in each.

`python -m bench.ws_sender`, driven over JSON lines like the load client. It holds a few
authenticated sockets in the room (a real client's path: the server validates, rate
limits, stores, commits and broadcasts) and sends round-robin over them, so no sender
exceeds the per-user rate limit (5 frames/s). Each message carries `seq` and `t`
(time.time() just before the send), which the broadcast echoes to every receiver. The
sockets read what the room sends them, as any client must, and keep the ids of their own
messages: with `mix`, that fraction of the frames are edits, deletes and reactions (in
turn) on the sending socket's own earlier messages (edits and reactions on its newest,
deletes of its oldest; a plain message while it has none), counted per kind. Messages
are numbered apart from them, so each socket's `seq`s stay consecutive.

Commands: {"cmd": "connect", "port", "path", "sessions": [...]}
          {"cmd": "publish", "rate", "count", "first", "pad", "mix", "emoji"}
          {"cmd": "quit"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
from collections import Counter
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import commands

MIX_KINDS = ("edit", "delete", "react")


class Sender:
    def __init__(self) -> None:
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.closed: list[int] = []
        self.own: list[list[int]] = []  # per socket: ids of its live messages, oldest first
        self.refused: Counter[str] = Counter()  # error frames the server sent, by code
        self.changes = 0

    async def connect(self, *, port: int, path: str, sessions: list[str]) -> dict[str, Any]:
        for session in sessions:
            ws = await connect(
                f"ws://127.0.0.1:{port}{path}",
                additional_headers={
                    "Origin": f"http://127.0.0.1:{port}",
                    "Cookie": f"sessionid={session}",
                },
                open_timeout=30,
                max_size=2**22,
                compression=None,
            )
            self.sockets.append(ws)
            self.own.append([])
            self.readers.append(asyncio.create_task(self._drain(ws, self.own[-1])))
        return {"connected": len(self.sockets)}

    async def _drain(self, ws: ClientConnection, own: list[int]) -> None:
        user = None
        try:
            async for text in ws:
                frame = json.loads(text)
                kind = frame.get("type")
                if kind == "welcome":
                    user = frame["user"]
                elif kind == "broadcast" and frame["data"].get("user") == user:
                    own.append(frame["data"]["id"])
                elif kind == "error":
                    self.refused[frame.get("code", "")] += 1
        except ConnectionClosed:
            pass
        self.closed.append(ws.close_code or 1006)

    def _change(self, emoji: list[str]) -> tuple[ClientConnection, dict[str, Any]] | None:
        """The mix's next edit, delete or reaction (in turn), on the socket's own message,
        or None while that socket has none (a plain message goes instead)."""
        n = self.changes
        index = n // len(MIX_KINDS) % len(self.sockets)  # each socket in turn does all three
        own = self.own[index]
        if not own:
            return None
        kind = MIX_KINDS[n % len(MIX_KINDS)]
        self.changes += 1
        if kind == "delete":
            frame: dict[str, Any] = {"type": "delete", "id": own.pop(0)}
        elif kind == "edit":  # a new text each time: an edit to the same text sends nothing
            frame = {"type": "edit", "id": own[-1], "content": f"edit {n}"}
        else:  # toggles: on, then off the next time the same emoji comes round
            frame = {"type": "react", "id": own[-1], "emoji": emoji[n // 3 % len(emoji)]}
        return self.sockets[index], frame

    async def publish(
        self, *, rate: float, count: int, first: int, pad: int = 100, mix: float = 0,
        emoji: list[str] | None = None, **_: Any,
    ):  # fmt: skip
        """Send `count` frames at `rate` per second: messages numbered from `first` and,
        with `mix`, that fraction of edits, deletes and reactions (with `emoji`, the
        server's set: this process has no Django to import it from)."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        late = 0.0
        content = "x" * max(1, pad)
        seq = first
        kinds: Counter[str] = Counter()
        for i in range(count):
            due = start + i / rate
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                late = max(late, now - due)
            # Every 1/mix-th frame, spread evenly through the step.
            change = (
                self._change(emoji or [])
                if math.floor((i + 1) * mix) > math.floor(i * mix)
                else None
            )
            if change is not None:
                ws, frame = change
                kinds[frame["type"]] += 1
            else:
                # Socket seq % senders: the load client checks each socket's order.
                ws = self.sockets[seq % len(self.sockets)]
                # seq and t first, in this order: the load client reads them with one regex.
                frame = {"type": "message", "seq": seq, "t": time.time(), "content": content}
                seq += 1
            await ws.send(json.dumps(frame, separators=(",", ":")))
        return {
            "sent": count,
            "messages": seq - first,
            "changes": dict(kinds),
            "refused": dict(self.refused),
            "seconds": round(loop.time() - start, 3),
            "late_s": round(late, 3),
            "sender_closed": self.closed,
        }

    async def close(self) -> None:
        for ws in self.sockets:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2)
        for task in self.readers:
            task.cancel()


async def serve_commands() -> None:
    sender = Sender()
    await commands.serve(
        {"connect": sender.connect, "publish": sender.publish, "ping": lambda: {"pong": True}},
        sender.close,
    )


def main() -> None:
    asyncio.run(serve_commands())


if __name__ == "__main__":
    main()
