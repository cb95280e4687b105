"""One client interface over the ways to read the notification stream: SSE, long polls and
short polls, so a replay, authz or exactly-once test runs unchanged over each."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from tests.support.sse_client import EventFeed, SSEEvent, open_stream

TRANSPORTS = ("sse", "longpoll", "poll")
POLL_PATH = "/api/notifications/poll/"
# A short-polling client's pause between polls.
POLL_INTERVAL = 0.2


def feed_request(transport: str) -> tuple[str, dict[str, Any]]:
    """The path and parameters that open a feed; polls answer at once (`wait=0`)."""
    if transport == "sse":
        return "/events/", {}
    return POLL_PATH, {"wait": 0}


@dataclass(kw_only=True)
class PollFeed(EventFeed):
    """Polls in a loop, each from the last cursor; `last_id` is that cursor."""

    client: httpx.AsyncClient
    wait: float
    params: dict[str, Any]
    task: asyncio.Task[None] | None = None

    async def poll(self, wait: float) -> int:
        """One poll; its events go to the queue. Returns the HTTP status."""
        params = {**self.params, "wait": wait}
        if self.last_id:
            params["cursor"] = self.last_id
        response = await self.client.get(POLL_PATH, params=params)
        if response.status_code != 200:
            return response.status_code
        body = response.json()
        for event in body["events"]:
            self.queue.put_nowait(SSEEvent(event["event"], json.dumps(event["data"]), event["id"]))
        self.last_id = body["cursor"]
        return 200

    async def _pump(self) -> None:
        try:
            while await self.poll(self.wait) == 200:
                if self.wait == 0:
                    await asyncio.sleep(POLL_INTERVAL)
        except httpx.HTTPError:
            pass
        finally:
            self.queue.put_nowait(None)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        await self.client.aclose()


async def open_feed(
    transport: str,
    base_url: str,
    *,
    session: str | None = None,
    last_event_id: str | None = None,
    params: dict[str, Any] | None = None,
) -> EventFeed:
    """An open feed: like tests.support.sse_client.open_stream, its position pinned before
    it returns (a poll's first answer, an SSE stream's first `id:`)."""
    if transport == "sse":
        return await open_stream(
            base_url, session=session, last_event_id=last_event_id, params=params
        )
    client = httpx.AsyncClient(
        base_url=base_url,
        cookies={"sessionid": session} if session else {},
        timeout=httpx.Timeout(5, read=40),
    )
    wait = {"longpoll": 25.0, "poll": 0.0}[transport]
    feed = PollFeed(client=client, wait=wait, params=params or {}, last_id=last_event_id or "")
    status = await feed.poll(0)
    assert status == 200, status
    feed.task = asyncio.get_running_loop().create_task(feed._pump())
    return feed


# Runs a test once per transport, as its `transport` argument.
each_transport = pytest.mark.parametrize("transport", TRANSPORTS)
