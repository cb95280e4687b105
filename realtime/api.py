"""What site code calls to use Pulse: publish to a channel, add a kind of channel.

    from realtime.api import LATEST, publish, register_channel

    register_channel("ticker", can_read=lambda user, key: True, replay=LATEST)
    publish("ticker-ACME", "price", {"symbol": "ACME", "price": 101.5})

Notifying users is `notifications.api.notify(...)`. Both publish through the Pulse channel
layer (realtime.layer), so SSE streams (`/events/?channel=ticker-ACME`), WebSocket clients
(`/ws/events/?channel=ticker-ACME`) and any consumer of yours that joined the group of
that name get the event, on every process. Inside a transaction, the publish waits for
the commit (a rolled back change is never announced).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import redis
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction

from realtime import channels, latest, metrics
from realtime.channels import LATEST, NO_REPLAY, STORAGE, AccessRule, ChannelKind
from realtime.layer import pulse_layer
from realtime.wire import event_message

__all__ = ["LATEST", "NO_REPLAY", "STORAGE", "apublish", "publish", "register_channel"]

logger = logging.getLogger(__name__)

MAX_DATA_BYTES = 64 * 1024  # what one event may carry (a WebSocket frame's bound too)


def register_channel(
    name: str,
    *,
    can_read: AccessRule,
    replay: str = NO_REPLAY,
    key: str | None = channels.DEFAULT_KEY,
    source: Any = None,
) -> ChannelKind:
    """Add a kind of live channel: `<name>-<key>` (or just `<name>` with key=None).

    can_read(user, key) -> bool decides who may read a channel of this kind; it gets only
    active, logged-in users, and a channel of no registered kind is readable by nobody.
    replay: NO_REPLAY (live only), LATEST (the latest value, kept in Redis: a client that
    connects, comes back or falls behind gets the newest value, not a history), or
    STORAGE with `source`, an object with current_id(channel, key) and
    events_after(channel, key, last_id, limit) -> django_eventstream Event list.
    Call it from an AppConfig.ready().
    """
    return channels.register(name, can_read=can_read, replay=replay, key=key, source=source)


def _checked(channel: str, event: str, data: Any, event_id: int | None) -> tuple[str, str]:
    found = channels.kind_of(channel)
    if found is None:
        raise ImproperlyConfigured(
            f"no channel kind matches {channel!r}: register it with "
            "realtime.api.register_channel() first"
        )
    kind = found[0]
    if not isinstance(event, str) or not event or "\n" in event or "\r" in event:
        raise ValueError("event must be a non-empty one-line string")
    # A str is sent as it is (JSON already); anything else is encoded as Django encodes it.
    text = data if isinstance(data, str) else json.dumps(data, cls=DjangoJSONEncoder)
    if len(text.encode()) > MAX_DATA_BYTES:
        raise ValueError(f"data is over {MAX_DATA_BYTES} bytes")
    if kind.replay == STORAGE and event_id is None:
        raise ValueError(
            f"channels of kind {kind.name!r} replay from storage: pass id=<the stored row's id>"
        )
    if kind.replay != STORAGE and event_id is not None:
        raise ValueError(f"channels of kind {kind.name!r} take no id (replay={kind.replay!r})")
    return kind.replay, text


def publish(channel: str, event: str, data: Any, *, id: int | None = None) -> None:
    """Send `event` with `data` (JSON-encoded unless a str) to everyone on `channel`.

    After the current transaction commits, if there is one. A publish that fails (Redis
    away) is logged, not raised: for STORAGE channels clients replay it from storage.
    """
    replay, text = _checked(channel, event, data, id)
    transaction.on_commit(lambda: _send(channel, event, text, replay, id), robust=True)


def _send(channel: str, event: str, text: str, replay: str, event_id: int | None) -> None:
    if replay == LATEST:
        try:
            event_id = latest.store(channel, event, text)
        except (redis.RedisError, OSError) as exc:
            logger.warning("publish to %s failed: %s", channel, exc)
            metrics.PUBLISH_FAILURES.inc()
            return
    pulse_layer().publish_sync([(channel, _message(channel, event, text, replay, event_id))])


async def apublish(channel: str, event: str, data: Any, *, id: int | None = None) -> None:
    """publish() for async code (a producer task, a consumer); at once, no transaction."""
    replay, text = _checked(channel, event, data, id)
    if replay == LATEST:
        id = await latest.astore(channel, event, text)
    await pulse_layer().group_send(channel, _message(channel, event, text, replay, id))


def _message(
    channel: str, event: str, text: str, replay: str, event_id: int | None
) -> dict[str, Any]:
    if replay == LATEST:
        # `prev` 0: every value replaces the last, so no gap can exist (realtime.latest).
        return event_message(channel, event, text, event_id, 0, latest=True)
    return event_message(channel, event, text, event_id)
