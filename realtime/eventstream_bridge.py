"""`django_eventstream.send_event()` works in Pulse: it publishes through realtime.api.

Code written for django-eventstream calls `send_event(channel, event_type, data)`. Pulse
has no event table of its own (replay comes from each kind's source), so the call becomes
realtime.api.publish() for live-only and latest-value channels, and refuses, naming the
right call, where it cannot keep its promise: a channel replayed from storage needs the
stored row's id, and `skip_user_ids` has no equivalent (publish to a channel those users
do not read). Installed by RealtimeConfig.ready(); a module that imported the original
before that reaches notifications.storage.ReplayStorage.append_event, which refuses the
same way. tests/test_canaries.py checks that the bridge is what django_eventstream exports.
"""

from __future__ import annotations

import json
from typing import Any

import django_eventstream
import django_eventstream.eventstream
from django.core.exceptions import ImproperlyConfigured
from django.core.serializers.json import DjangoJSONEncoder

from realtime import channels
from realtime.api import publish

RIGHT_CALL = (
    "use realtime.api.publish(channel, event, data[, id=]) to publish to a channel, or "
    "notifications.api.notify() to notify users"
)


def send_event(
    channel: str,
    event_type: str,
    data: Any,
    skip_user_ids: Any = None,
    async_publish: bool = True,
    json_encode: bool = True,
) -> None:
    """django_eventstream.send_event(), through Pulse (see the module docstring)."""
    if skip_user_ids:
        raise ValueError(f"send_event(skip_user_ids=...) is not supported in Pulse: {RIGHT_CALL}")
    if channels.replay_of(channel) == channels.STORAGE:
        raise ImproperlyConfigured(
            f"send_event() cannot store an event for {channel!r}, which replays from "
            f"storage: {RIGHT_CALL}"
        )
    publish(
        channel, event_type, json.dumps(data, cls=DjangoJSONEncoder) if json_encode else str(data)
    )


def install() -> None:
    django_eventstream.send_event = send_event
    django_eventstream.eventstream.send_event = send_event
