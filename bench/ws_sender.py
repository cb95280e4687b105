"""The WebSocket benchmark sender: chat messages at a fixed rate, the send time in each.

`python -m bench.ws_sender`, driven over JSON lines like the load client. It holds a few
authenticated sockets in the room (a real client's path: the server validates, rate
limits, stores, commits and broadcasts) and sends round-robin over them, so no sender
exceeds the per-user rate limit (5 frames/s). Each message carries `seq` and `t`
(time.time() just before the send), which the broadcast echoes to every receiver. The
sockets read and discard what the room sends them, as any client must.

Commands: {"cmd": "connect", "port", "path", "sessions": [...]}
          {"cmd": "publish", "rate", "count", "first", "pad"}
          {"cmd": "quit"}
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench import commands


class Sender:
    def __init__(self) -> None:
        self.sockets: list[ClientConnection] = []
        self.readers: list[asyncio.Task[None]] = []
        self.closed: list[int] = []

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
            self.readers.append(asyncio.create_task(self._drain(ws)))
        return {"connected": len(self.sockets)}

    async def _drain(self, ws: ClientConnection) -> None:
        try:
            async for _ in ws:
                pass
        except ConnectionClosed:
            pass
        self.closed.append(ws.close_code or 1006)

    async def publish(self, *, rate: float, count: int, first: int, pad: int = 100, **_: Any):
        """Send `count` messages numbered from `first` at `rate` per second."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        late = 0.0
        content = "x" * max(1, pad)
        for i in range(count):
            due = start + i / rate
            now = loop.time()
            if due > now:
                await asyncio.sleep(due - now)
            else:
                late = max(late, now - due)
            # Socket seq % senders: the load client checks each socket's order.
            ws = self.sockets[(first + i) % len(self.sockets)]
            # seq and t first, in this order: the load client reads them with one regex.
            frame = {"type": "message", "seq": first + i, "t": time.time(), "content": content}
            await ws.send(json.dumps(frame, separators=(",", ":")))
        return {
            "sent": count,
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
