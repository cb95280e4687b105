"""`/ws/events/?channel=...`: the live channels of realtime.channels over a WebSocket.

The same channels, session auth and default deny as SSE's `/events/`, for clients that
prefer a socket: frames `{"type": "event", "channel", "event", "id", "data"}` (data parsed
JSON, as an SSE client would parse it). A latest-value channel sends its latest value at
once and never an older one after a newer. It is a plain Channels consumer on the Pulse
layer's standard API (group_add and a handler per message type), which is also what makes
it the example for consumers of your own. Live only: replay of stored channels after a
gap is what SSE's `Last-Event-ID` is for. A socket on the user's own channel counts as
their being on the site (realtime.seen_live), as a stream does: what it showed is not emailed.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from realtime import channels, latest, metrics, seen_live
from realtime.db import connect_database
from realtime.wire import PUBLISHED_AT, user_group

logger = logging.getLogger(__name__)

MAX_CHANNELS = 10
CLOSE_SIGNED_OUT = 4001
CLOSE_FORBIDDEN = 4003
CLOSE_BAD_REQUEST = 4400


@connect_database
def _denied(user: Any, names: list[str]) -> list[str]:
    return [name for name in names if not channels.can_read(user, name)]


class UserGroupMixin:
    """For a Channels consumer: be in the user's group (`pulse.user.<id>`), which every live
    connection of theirs shares, so signing out closes that session's connections and a
    password change or deactivation closes all of them with 4001, as for chat and SSE."""

    session_key = ""

    async def join_user_group(self, user: Any) -> None:
        session = self.scope.get("session")
        self.session_key = getattr(session, "session_key", None) or ""
        await self.channel_layer.group_add(user_group(user.pk), self.channel_name)

    async def leave_user_group(self, user: Any) -> None:
        await self.channel_layer.group_discard(user_group(user.pk), self.channel_name)

    async def pulse_kick(self, message: dict[str, Any]) -> None:
        session = message.get("session") or ""
        if not session or session == self.session_key:
            await self.signed_out()

    async def signed_out(self) -> None:
        await self.close(CLOSE_SIGNED_OUT)

    async def chat_close(self, message: dict[str, Any]) -> None:
        """Chat's own close for its sockets; this connection ends by pulse.kick."""

    async def chat_recheck(self, message: dict[str, Any]) -> None:
        """About chat rooms, which this connection does not carry."""


class EventsConsumer(UserGroupMixin, AsyncJsonWebsocketConsumer):
    names: list[str] = []
    last: dict[str, int] = {}
    counted = False
    live: tuple[int, str] | None = None  # its entry in seen_live.BEAT, if it shows own events

    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()  # before accept: the handshake gets HTTP 403
            return
        query = parse_qs(self.scope.get("query_string", b"").decode(errors="replace"))
        names = list(dict.fromkeys(query.get("channel", [])))
        await self.accept()
        if not names or len(names) > MAX_CHANNELS:
            message = f"name 1 to {MAX_CHANNELS} channels with ?channel="
            await self._refuse("bad_request", message, CLOSE_BAD_REQUEST)
            return
        denied = await _denied(user, names)
        if denied:
            await self._refuse("forbidden", "permission denied", CLOSE_FORBIDDEN, channels=denied)
            return
        self.names, self.last = names, dict.fromkeys(names, 0)
        self.counted = True
        metrics.WS_EVENTS_OPEN.inc()
        for group in names:
            await self.channel_layer.group_add(group, self.channel_name)
        await self.join_user_group(user)
        if seen_live.carries_own(user.pk, names):
            self.live = (user.pk, self.channel_name)
            await seen_live.mark((user.pk,))
            seen_live.BEAT.add(self.live)
        newest = await latest.aread([n for n in names if channels.replay_of(n) == channels.LATEST])
        for name, (event_id, event, data) in newest.items():
            # A value published before this read may still be on its way: never after it.
            self.last[name] = event_id
            await self._event(name, event, data, event_id)

    async def _refuse(self, code: str, message: str, close_code: int, **extra: Any) -> None:
        await self.send_json({"type": "error", "code": code, "message": message, **extra})
        await self.close(close_code)

    async def disconnect(self, code: int) -> None:
        if self.counted:
            self.counted = False
            metrics.WS_EVENTS_OPEN.dec()
        if self.live is not None:
            seen_live.BEAT.discard(self.live)
            await seen_live.mark((self.live[0],))
            self.live = None
        user = self.scope.get("user")
        if self.names and user is not None:
            for group in self.names:
                await self.channel_layer.group_discard(group, self.channel_name)
            await self.leave_user_group(user)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        await self.send_json(
            {"type": "error", "code": "read_only", "message": "this socket only delivers events"}
        )

    async def decode_json(self, text_data: str) -> Any:
        try:
            return json.loads(text_data)
        except ValueError:
            return None

    async def _event(self, channel: str, event: str, data: str, event_id: int | None) -> None:
        try:
            parsed = json.loads(data)
        except ValueError:
            parsed = data
        await self.send_json(
            {"type": "event", "channel": channel, "event": event, "id": event_id, "data": parsed}
        )

    # -- what the layer delivers (realtime.wire) --------------------------------------------

    async def pulse_event(self, message: dict[str, Any]) -> None:
        channel, event_id = message.get("channel"), message.get("id")
        if channel not in self.last:
            return
        if message.get("latest") and event_id is not None:
            if event_id <= self.last[channel]:
                return  # a newer value was sent already
            self.last[channel] = event_id
        await self._event(channel, message["event"], message["data"], event_id)
        # Per receiver here: this path dispatches a consumer per member anyway.
        metrics.WS_EVENTS_DELIVERED.inc()
        metrics.observe_latency(metrics.WS_EVENTS_LATENCY, message.get(PUBLISHED_AT))
