"""A small Server-Sent Events client over httpx, parsing the stream as a browser does."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import httpx


@dataclass
class SSEEvent:
    event: str
    data: str
    id: str | None

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class SSEStream:
    """An open stream; `last_id` follows `id:` fields like EventSource.lastEventId."""

    response: httpx.Response
    client: httpx.AsyncClient
    last_id: str = ""
    queue: asyncio.Queue[SSEEvent | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    async def _pump(self) -> None:
        event, data, event_id = "", [], None
        try:
            async for line in self.response.aiter_lines():
                if line == "":
                    if event_id is not None:
                        self.last_id = event_id
                    if data:
                        self.queue.put_nowait(
                            SSEEvent(event or "message", "\n".join(data), event_id)
                        )
                    event, data, event_id = "", [], None
                    continue
                if line.startswith(":"):
                    continue
                name, _, value = line.partition(":")
                value = value[1:] if value.startswith(" ") else value
                if name == "event":
                    event = value
                elif name == "data":
                    data.append(value)
                elif name == "id":
                    event_id = value
        except (httpx.HTTPError, asyncio.CancelledError):
            pass
        finally:
            self.queue.put_nowait(None)

    async def next(
        self, timeout: float = 5.0, *, skip: tuple[str, ...] = ("keep-alive",)
    ) -> SSEEvent:
        while True:
            item = await asyncio.wait_for(self.queue.get(), timeout)
            if item is None:
                raise EOFError("stream closed")
            if item.event not in skip:
                return item

    async def collect(self, event: str, count: int, timeout: float = 10.0) -> list[SSEEvent]:
        """Wait for `count` events of one type (others are skipped)."""
        out: list[SSEEvent] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while len(out) < count:
            item = await self.next(max(0.01, deadline - loop.time()))
            if item.event == event:
                out.append(item)
        return out

    async def quiet(self, seconds: float) -> list[SSEEvent]:
        """Everything (but keep-alives) that arrives within `seconds`."""
        out: list[SSEEvent] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while (left := deadline - loop.time()) > 0:
            try:
                out.append(await self.next(left))
            except (TimeoutError, EOFError):
                break
        return out

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
        await self.response.aclose()
        await self.client.aclose()


async def open_stream(
    base_url: str,
    path: str = "/events/",
    *,
    session: str | None = None,
    last_event_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> SSEStream:
    cookies = {"sessionid": session} if session else {}
    headers = {"Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    client = httpx.AsyncClient(
        base_url=base_url, cookies=cookies, timeout=httpx.Timeout(5, read=None)
    )
    request = client.build_request("GET", path, headers=headers, params=params)
    response = await client.send(request, stream=True)
    stream = SSEStream(response=response, client=client)
    if response.status_code == 200:
        stream.task = asyncio.get_running_loop().create_task(stream._pump())
        opened = await stream.next(5.0)
        assert opened.event == "stream-open", opened
    return stream


async def ended(stream, timeout: float = 2.0) -> str:
    """Wait until the server ends the stream; return the reason it gave."""
    reason = ""
    async with asyncio.timeout(timeout):
        while True:
            try:
                event = await stream.next(timeout)
            except EOFError:
                return reason
            if event.event == "stream-error":
                reason = event.json().get("reason", "")
