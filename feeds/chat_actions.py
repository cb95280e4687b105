"""What a chat client does, whatever carries it: the WebSocket consumer (feeds.consumers)
and the HTTP API (feeds.chat_api) call the same functions, so a message posted either way
gets the same checks, the same rate limit and the same `client_msg_id` dedupe.

Database work runs on the chat database thread (realtime.db), off the event loop.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

from django.core.exceptions import ValidationError

from feeds import moderation, protocol, ratelimit, selectors, services
from feeds.models import Room
from realtime.db import chat_database


@chat_database
def room_entry(user: Any, slug: str) -> Room | None:
    return selectors.room_entry(user=user, slug=slug)


@chat_database
def _history(room_id: int, request: protocol.HistoryIn) -> tuple[list[dict[str, Any]], bool]:
    return selectors.message_history(
        room_id=room_id, before=request.before, after=request.after, limit=request.limit
    )


async def history(room_id: int, request: protocol.HistoryIn) -> dict[str, Any]:
    """The `history` frame answering `request`: a page that fits in one frame."""
    messages, has_more = await _history(room_id, request)
    messages, cut = protocol.fit_history(messages, keep_newest=request.after is None)
    return protocol.history(messages, has_more=has_more or cut, request=request)


async def spend(*, user_id: int, kind: str) -> ratelimit.Verdict:
    """Charge one client frame of `kind` to the user's budget, shared by all transports."""
    return await ratelimit.frame_verdict(user_id=user_id, cost=protocol.cost(kind))


@chat_database
def post(room: Room, author: Any, message: protocol.MessageIn) -> tuple[dict[str, Any], bool]:
    """Store and broadcast a checked message: (payload, created); FrameError if refused."""
    try:
        return services.message_post(
            room=room,
            author=author,
            content=message.content,
            client_msg_id=message.client_msg_id,
            client_fields=message.client_fields,
        )
    except ValidationError as exc:
        if exc.code == protocol.BLOCKED:
            raise protocol.FrameError(
                protocol.BLOCKED, " ".join(exc.messages), client_msg_id=message.client_msg_id
            ) from None
        if exc.code == protocol.MUTED:
            raise protocol.FrameError(
                protocol.MUTED,
                " ".join(exc.messages),
                client_msg_id=message.client_msg_id,
                extra={"remaining_seconds": exc.params["remaining"]},
            ) from None
        raise protocol.FrameError(
            protocol.INVALID, " ".join(exc.messages), client_msg_id=message.client_msg_id
        ) from None


def _refusal(exc: ValidationError) -> protocol.FrameError:
    # services' codes for edits and deletes are the error frame's; anything else is invalid.
    codes = (protocol.NOT_FOUND, protocol.FORBIDDEN, protocol.EDIT_WINDOW_OVER, protocol.BAD_EMOJI)
    code = getattr(exc, "code", None)
    return protocol.FrameError(code if code in codes else protocol.INVALID, " ".join(exc.messages))


@contextlib.contextmanager
def _refusals() -> Iterator[None]:
    """A service's ValidationError becomes the FrameError the socket answers with."""
    try:
        yield
    except ValidationError as exc:
        raise _refusal(exc) from None


@chat_database
def edit(room: Room, editor: Any, request: protocol.EditIn) -> dict[str, Any]:
    """Edit the editor's message: the message as history now gives it; FrameError if refused."""
    with _refusals():
        return services.message_edit(
            room=room, editor=editor, message_id=request.id, content=request.content
        )


@chat_database
def delete(room: Room, actor: Any, message_id: int) -> None:
    """Delete a message as `actor` (its author or a moderator); FrameError if refused."""
    with _refusals():
        services.message_delete(room=room, actor=actor, message_id=message_id)


@chat_database
def _read_marker_move(room: Room, user: Any, message_id: int) -> int | None:
    return services.read_marker_move(room=room, user=user, message_id=message_id)


async def read(room: Room, user: Any, message_id: int) -> int | None:
    """Move the user's read marker (throttled per user and room): the new marker, or None
    if it did not move (already further, or throttled: the client's next `read` moves it)."""
    if not await ratelimit.read_allowed(room_id=room.pk, user_id=user.pk):
        return None
    return await _read_marker_move(room, user, message_id)


@chat_database
def react(room: Room, user: Any, request: protocol.ReactIn) -> bool:
    """Toggle a reaction: whether it is now on; FrameError if refused."""
    with _refusals():
        return services.message_react(
            room=room, user=user, message_id=request.id, emoji=request.emoji
        )


@chat_database
def mute(room: Room, by: Any, data: dict[str, Any]) -> dict[str, Any]:
    """A moderator's `mute` frame: its ack; FrameError if refused."""
    username, minutes = protocol.mute_in(data)
    with _refusals():
        until = moderation.room_mute(room=room, by=by, username=username, minutes=minutes)
    return protocol.ack("mute", user=username, until=until.isoformat())


@chat_database
def ban(room: Room, by: Any, data: dict[str, Any]) -> dict[str, Any]:
    """A moderator's `ban` frame: its ack; FrameError if refused."""
    username = protocol.ban_in(data)
    with _refusals():
        moderation.room_ban(room=room, by=by, username=username)
    return protocol.ack("ban", user=username)


@chat_database
def report(room: Room, reporter: Any, data: dict[str, Any]) -> dict[str, Any]:
    """A member's `report` frame: its ack; FrameError if refused."""
    message_id, reason = protocol.report_in(data)
    with _refusals():
        moderation.message_report(
            room=room, reporter=reporter, message_id=message_id, reason=reason
        )
    return protocol.ack("report", id=message_id)
