"""Carry SSE events between processes over Redis pub/sub, surviving Redis restarts.

Replaces django-eventstream's own Redis listener, which stops for good after a Redis
outage, and feeds this process's fan-out hub (notifications.hub). Every event is already
stored (its table is the replay log) before it is published, so a lost publish is never
a lost event: whenever this process's subscription (re)connects, and whenever a
publisher reports that it failed to publish, every local stream re-reads its channels
from the database; and a notification names the recipient's one before it (`prev`), so
a stream that missed that one re-reads its gap when the next arrives, from any process.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
from collections.abc import Iterable
from typing import Any

import redis
import redis.asyncio as aioredis
from django.conf import settings

from notifications.hub import SESSION_ENDED, current_hub, encode_event

logger = logging.getLogger(__name__)

PUBSUB_CHANNEL = "rt:sse"
RECONNECT_DELAYS = (0.1, 0.25, 0.5, 1.0, 2.0)

_client: redis.Redis | None = None
_client_lock = threading.Lock()
_publish_failed = threading.Event()


def _redis() -> redis.Redis:
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2
            )
        return _client


def publish(messages: Iterable[tuple[Any, ...]]) -> bool:
    """Publish (channel, event_type, json_data, event_id[, prev]) tuples; False if Redis failed.

    `prev`: the id of the channel's event before this one. A stream that has not got it
    reads the gap from storage before this event (notifications.hub), so a publish that
    failed in any process reaches clients with the next event on that channel. A failure
    is logged, not raised: the events are stored, and also reach clients on the resync
    that this process's next successful publish (or a reconnecting server) triggers.
    """
    encoded = [_envelope(*message) for message in messages]
    if not encoded:
        return True
    try:
        with _redis().pipeline(transaction=False) as pipe:
            if _publish_failed.is_set():
                pipe.publish(PUBSUB_CHANNEL, json.dumps({"resync": True}))
            for message in encoded:
                pipe.publish(PUBSUB_CHANNEL, message)
            pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _publish_failed.set()
        logger.warning("live publish of %d events failed (%s); clients resync", len(encoded), exc)
        return False
    _publish_failed.clear()
    return True


def _envelope(
    channel: str, event_type: str, data: str, event_id: int, prev: int | None = None
) -> str:
    # `prev` travels beside the event, never in its data: the JSON clients get is unchanged.
    message = {"c": channel, "t": event_type, "d": data, "i": event_id}
    if prev is not None:
        message["p"] = prev
    return json.dumps(message)


def publish_control(message: dict[str, Any]) -> bool:
    """Publish a control message (a kick) to every process; False if Redis failed."""
    try:
        _redis().publish(PUBSUB_CHANNEL, json.dumps(message))
    except (redis.RedisError, OSError) as exc:
        logger.warning("control publish failed (%s)", exc)
        return False
    return True


def deliver_locally(message: dict[str, Any]) -> None:
    """Hand one pub/sub message to this process's SSE hub (event loop thread only)."""
    hub = current_hub()
    if hub is None:
        return  # no stream has started in this process yet
    if message.get("resync"):
        hub.resync()
    elif "kick" in message:
        kick = message["kick"]
        hub.kick(
            user_id=kick["user"],
            session_key=kick["session"],
            reason=kick.get("reason", SESSION_ENDED),
        )
    else:
        hub.publish(
            encode_event(message["c"], message["t"], message["d"], message["i"], message.get("p"))
        )


def resync_local_streams() -> None:
    """Make every local stream re-read its channels from storage (catches missed events)."""
    hub = current_hub()
    if hub is not None:
        hub.resync()


class Subscriber:
    """One subscription per server process, restarted with backoff whenever Redis drops."""

    def __init__(self) -> None:
        self.task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    def ensure_running(self) -> None:
        if self.task is None or self.task.done():
            self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        attempt = 0
        while True:
            client = aioredis.Redis.from_url(
                settings.REDIS_URL, socket_timeout=None, socket_connect_timeout=2
            )
            try:
                async with client.pubsub() as pubsub:
                    await pubsub.subscribe(PUBSUB_CHANNEL)
                    self.connected.set()
                    if attempt:
                        logger.info("live event subscription restored; resyncing streams")
                    # Anything published while this process was not subscribed is in storage.
                    resync_local_streams()
                    attempt = 0
                    async for raw in pubsub.listen():
                        if raw["type"] == "message":
                            self._handle(raw["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # any failure must lead to a retry
                self.connected.clear()
                delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
                attempt += 1
                logger.warning("live event subscription lost (%s); retrying in %.2f s", exc, delay)
                await asyncio.sleep(delay)
            finally:
                await client.aclose()

    def _handle(self, data: bytes) -> None:
        try:
            deliver_locally(json.loads(data))
        except (ValueError, KeyError, TypeError):
            logger.exception("dropping malformed relay message")


subscriber = Subscriber()
