"""Who may read the notification channels, registered with the core's registry.

Channel names: `user-42` (a user's notifications), `user-42-read` (their read-state
changes), `group-7` (announcements to members of auth group 7), and the public
`announcements` and `activity` channels. `register_kinds()` adds them to
realtime.channels, which decides for every channel (site code adds its own kinds), default
deny: /events/ serves any channel the registry lets the user read.
"""

from __future__ import annotations

import re
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django_eventstream.channelmanager import ChannelManagerBase

from realtime import channels as realtime_channels

# Channels a request may add to the user's own (one per group they are in), per stream.
MAX_CHANNELS = 10
PUBLIC_CHANNELS = frozenset({"announcements", "activity"})
# Channels a page subscribes to when it names none; `activity` is asked for by the feed only.
DEFAULT_PUBLIC_CHANNELS = ("announcements",)

_CHANNEL_RE = re.compile(r"(?P<kind>user|group)-(?P<key>[1-9][0-9]{0,17})(?P<read>-read)?")


def user_channel(user_id: int) -> str:
    return f"user-{user_id}"


def read_channel(user_id: int) -> str:
    return f"user-{user_id}-read"


def group_channel(group_id: int) -> str:
    return f"group-{group_id}"


def parse_channel(channel: str) -> tuple[str, int | None]:
    """Split a channel name into (kind, key); kind is "" for names that are not ours."""
    if channel in PUBLIC_CHANNELS:
        return channel, None
    match = _CHANNEL_RE.fullmatch(channel)
    if not match:
        return "", None
    kind = match["kind"]
    if match["read"]:
        if kind != "user":
            return "", None
        kind = "user-read"
    return kind, int(match["key"])


def _group_ids(user: Any) -> set[int]:
    cached = getattr(user, "_rt_group_ids", None)
    if cached is None:
        cached = set(user.groups.values_list("id", flat=True))
        user._rt_group_ids = cached
    return cached


def can_read_channel(user: Any, channel: str) -> bool:
    """True only for channels the registry lets `user` read: for this app's kinds, the
    user's own channels, their groups' channels and public ones (register_kinds)."""
    if user is None or isinstance(user, AnonymousUser):
        return False
    return realtime_channels.can_read(user, channel)


def _own(user: Any, key: str | None) -> bool:
    return key is not None and key.removesuffix("-read") == str(user.pk)


def _recipient(key: str | None) -> int | None:
    """`user-42` carries user 42's notifications; `user-42-read` only read states."""
    return int(key) if key is not None and key.isdigit() else None


def _member(user: Any, key: str | None) -> bool:
    return key is not None and int(key) in _group_ids(user)


def _anyone(user: Any, key: str | None) -> bool:
    return True


def register_kinds() -> None:
    """Add this app's channel kinds to the core's registry (NotificationsConfig.ready)."""
    ids = r"[1-9][0-9]{0,17}"
    realtime_channels.register(
        "user",
        can_read=_own,
        replay=realtime_channels.STORAGE,
        key=rf"{ids}(?:-read)?",
        owner=_recipient,  # a live user-42 means 42 saw it: no email (realtime.seen_live)
    )
    realtime_channels.register("group", can_read=_member, replay=realtime_channels.STORAGE, key=ids)
    for name in PUBLIC_CHANNELS:
        realtime_channels.register(
            name, can_read=_anyone, replay=realtime_channels.STORAGE, key=None
        )


def channels_for_user(user: Any) -> list[str]:
    """The channels a logged-in page listens to by default."""
    channels = [user_channel(user.pk), read_channel(user.pk), *DEFAULT_PUBLIC_CHANNELS]
    channels.extend(group_channel(gid) for gid in sorted(_group_ids(user)))
    return channels


def requested_channels(request: HttpRequest) -> list[str]:
    """The channels a request asks for (`?channel=` repeated), or the user's defaults."""
    asked = [c for c in request.GET.getlist("channel") if c]
    if asked:
        return list(dict.fromkeys(asked))
    return channels_for_user(request.user)


class ChannelsRefused(Exception):
    """A `?channel=` list no stream may carry; `status` and `extra` shape the answer."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def readable_channels(request: HttpRequest) -> list[str]:
    """The channels a request asks for, checked; ChannelsRefused for too many or any
    the user may not read. /events/ and the pages that embed a stream position share it."""
    channels = requested_channels(request)
    # Only what a client adds to its defaults is capped, before any access check: the
    # defaults are the server's, and a page such as /feed/ asks for them by name.
    if len(set(channels).difference(channels_for_user(request.user))) > MAX_CHANNELS:
        raise ChannelsRefused(400, f"at most {MAX_CHANNELS} channels per stream")
    denied = [c for c in channels if not can_read_channel(request.user, c)]
    if denied:
        raise ChannelsRefused(403, "permission denied", channels=denied)
    return channels


class AccessChannelManager(ChannelManagerBase):
    """django-eventstream hook: channels from the session, never trusted from the URL alone."""

    def get_channels_for_request(self, request: HttpRequest, view_kwargs: dict) -> set[str]:
        return set(requested_channels(request))

    def can_read_channel(self, user: Any, channel: str) -> bool:
        return can_read_channel(user, channel)

    def is_channel_reliable(self, channel: str) -> bool:
        return realtime_channels.replay_of(channel) == realtime_channels.STORAGE
