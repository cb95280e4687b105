"""What travels between publishers, the channel layer and servers: names, messages, bytes.

Imported by publishers (services, on-commit callbacks, management commands) and by the
server side (hub, streams, sockets) alike, so neither imports the other for a constant.

Groups are Channels groups on the Pulse channel layer (realtime.layer):
- an SSE channel is a group of the same name (`user-42`, `announcements`, `ticker-AAPL`):
  its messages are `pulse.event` (one SSE event, encoded once per process);
- `pulse.user.<id>`: every live connection of one user, any transport (kicks, rechecks);
- `pulse.sse`: every SSE stream of a process (resync after a failed publish).
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

from django_eventstream.utils import sse_encode_error

# -- groups -------------------------------------------------------------------------------

GROUP_NAME = re.compile(r"[a-zA-Z0-9\-_.]{1,99}")  # Channels' rule for group names
SSE_GROUP = "pulse.sse"


def user_group(user_id: int) -> str:
    """All live connections of one user, on every process and transport."""
    return f"pulse.user.{user_id}"


# -- message types (the `type` of a group message) ------------------------------------------

EVENT = "pulse.event"  # an SSE event on a channel: channel, event, data (JSON str), id, prev
KICK = "pulse.kick"  # end a user's SSE streams: session ("" = all), reason
RESYNC = "pulse.resync"  # every stream re-reads its channels (a publish failed somewhere)
# When a message was published (time.time()), for the delivery latency metric
# (realtime.metrics); servers never send it to clients.
PUBLISHED_AT = "published_at"


def stamped(message: dict[str, Any]) -> dict[str, Any]:
    """`message` with the publish time (PUBLISHED_AT) set to now."""
    message[PUBLISHED_AT] = time.time()
    return message


def event_message(
    channel: str,
    event_type: str,
    data: str,
    event_id: int | None,
    prev: int | None = None,
    latest: bool = False,
) -> dict[str, Any]:
    """The group message for one SSE event; `data` is JSON text, sent to clients as is.

    `latest`: a latest-value channel's event, which replaces an unsent older one."""
    message: dict[str, Any] = {
        "type": EVENT,
        "channel": channel,
        "event": event_type,
        "data": data,
        "id": event_id,
        PUBLISHED_AT: time.time(),
    }
    if prev is not None:
        message["prev"] = prev
    if latest:
        message["latest"] = True
    return message


# -- WebSocket close codes of the transport (feeds.protocol lists the chat's own) -------------

# Too far behind (realtime.outbox): reconnect and backfill.
CLOSE_TOO_SLOW = 4009
# The server's live feed was interrupted (realtime.hub): reconnect and backfill.
CLOSE_RESYNC = 4012
# The server process is restarting (realtime.drain): reconnect at once (another process
# answers) and backfill. RFC 6455's "Service Restart".
CLOSE_SERVICE_RESTART = 1012

# -- SSE bytes ----------------------------------------------------------------------------

# The first event of every stream, after the 2 KiB padding old proxies need to start
# flushing (both as django-eventstream sends them).
STREAM_OPEN = b":" + b" " * 2048 + b"\n\nevent: stream-open\ndata:\n\n"
KEEPALIVE = b"event: keep-alive\ndata:\n\n"
# Why a stream was ended from outside (a kick): the client reacts to the reason.
SESSION_ENDED, CHANNELS_CHANGED = "session-ended", "channels-changed"
KICK_FRAMES = {
    # signed out, password changed, deactivated: the page says so and stops
    SESSION_ENDED: sse_encode_error(
        "forbidden", "session ended", extra={"reason": SESSION_ENDED}
    ).encode(),
    # joined or left a group: the page reconnects at once and gets its channels now
    CHANNELS_CHANGED: sse_encode_error(
        "channels-changed", "your channels changed: reconnect", extra={"reason": CHANNELS_CHANGED}
    ).encode(),
}

SERVER_RESTART = "server-restart"
# An EventSource's wait before it reconnects by itself (`retry:`), random per stream: after
# a restart thousands of browsers come back spread over seconds, not in one burst.
RETRY_MS = (1000, 10000)


def restart_frame(retry_ms: int) -> bytes:
    """The last bytes of a stream whose process restarts (realtime.drain). Pulse's pages
    reconnect at once; an EventSource left to itself waits `retry_ms` (it keeps that wait
    while every process is down). No `id:` line (unlike the kicks' `id: error`), so it
    resumes with its Last-Event-ID."""
    data = json.dumps(
        {
            "condition": SERVER_RESTART,
            "text": "server restarting: reconnect",
            "reason": SERVER_RESTART,
        }
    )
    return f"retry: {retry_ms}\nevent: stream-error\ndata: {data}\n\n".encode()


_FIELD_UNSAFE = re.compile(r"[\r\n\0]")
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


class Event:
    """One SSE event, its bytes encoded once: `head` + <connection's id> + `tail`."""

    __slots__ = ("channel", "head", "id", "prev", "replace", "size", "tail")

    def __init__(
        self,
        channel: str,
        event_type: str,
        data: str,
        event_id: int | None,
        prev: int | None = None,
        replace: bool = False,
    ) -> None:
        self.channel = channel
        # A latest value: it replaces the channel's value still waiting to be sent.
        self.replace = replace
        self.id = event_id
        # The id of the channel's event before this one, where the publisher knows it.
        self.prev = prev
        # The same sanitising as django-eventstream's sse_encode_event: a type or data
        # with line breaks can never start another field or event.
        self.head = f"event: {_FIELD_UNSAFE.sub('', str(event_type))}\nid: ".encode()
        lines = "".join(f"data: {line}\n" for line in _LINE_BREAK.split(str(data)))
        self.tail = f"\n{lines}\n".encode()
        self.size = len(self.head) + len(self.tail)


def encode_event(
    channel: str,
    event_type: str,
    data: str,
    event_id: int | None,
    prev: int | None = None,
    replace: bool = False,
) -> Event:
    return Event(channel, event_type, data, event_id, prev, replace)
