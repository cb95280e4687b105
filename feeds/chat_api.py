"""`/api/chat/rooms/<slug>/messages/`: a room over plain HTTP, for where WebSockets are
blocked. GET pages the history (`after=` backfills, `before=` scrolls back), POST sends a
message; new messages arrive on the room's SSE channel (feeds.chat_channel).

A POST body is a `message` frame (docs/chat-protocol.md) and goes through what a frame on
the socket goes through (feeds.chat_actions): the same checks, the same per-user rate
limit, shared with the user's sockets, and the same `client_msg_id` dedupe. Session auth;
Django's CSRF middleware guards the POST. Refusals are JSON: `{"error", "code"}`.
"""

from __future__ import annotations

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse

from feeds import chat_actions, live, protocol
from notifications.http import json_error

logger = logging.getLogger(__name__)

# Whole seconds until the bucket has a token again (ratelimit refills REFILL_PER_SECOND).
RETRY_AFTER_SECONDS = 1
_STATUS = {
    protocol.RATE_LIMITED: 429,
    protocol.UNAVAILABLE: 503,
    protocol.NOT_FOUND: 404,
    protocol.FORBIDDEN: 403,
    protocol.EDIT_WINDOW_OVER: 403,
    protocol.MUTED: 403,
    protocol.BLOCKED: 403,
}


def _refused(exc: protocol.FrameError) -> JsonResponse:
    extra = {"client_msg_id": exc.client_msg_id} if exc.client_msg_id else {}
    extra.update(exc.extra)
    response = json_error(_STATUS.get(exc.code, 400), exc.message, code=exc.code, **extra)
    if exc.code == protocol.RATE_LIMITED:
        response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def _history_request(request: HttpRequest) -> protocol.HistoryIn:
    data: dict[str, Any] = {}
    for name in ("before", "after", "limit"):
        raw = request.GET.get(name)
        if raw is not None:
            if not raw.isdigit() or len(raw) > 19:
                raise protocol.FrameError(protocol.INVALID, f"{name} must be a whole number")
            data[name] = int(raw)
    return protocol.history_in(data)


def _not_allowed(request: HttpRequest, allow: str) -> HttpResponse:
    response = json_error(405, f"method {request.method} not allowed")
    response["Allow"] = allow
    return response


async def _room_for(request: HttpRequest, slug: str) -> tuple[Any, Any, HttpResponse | None]:
    """(user, room, None), or a refusal as the third item."""
    user = await request.auser()
    if not user.is_authenticated:
        return user, None, json_error(403, "authentication required")
    room = await chat_actions.room_entry(user, slug)
    if room is None:
        # private rooms one may not enter alike
        return user, None, json_error(404, "no such room")
    return user, room, None


async def messages(request: HttpRequest, slug: str) -> HttpResponse:
    if request.method not in ("GET", "POST"):
        return _not_allowed(request, "GET, POST")
    user, room, refusal = await _room_for(request, slug)
    if refusal is not None:
        return refusal
    try:
        if request.method == "GET":
            frame = await chat_actions.history(room.pk, _history_request(request))
            frame["channel"] = live.sse_channel(room.pk)
            del frame["type"]
            return JsonResponse(frame)
        return await _post(request, room, user)
    except protocol.FrameError as exc:
        return _refused(exc)


def _frame(request: HttpRequest, kind: str = "message") -> dict[str, Any]:
    try:
        text = request.body.decode("utf-8")
    except UnicodeDecodeError:
        raise protocol.FrameError(protocol.BAD_JSON, "body must be UTF-8 JSON") from None
    data = protocol.parse(text)
    data.setdefault("type", kind)  # so the broadcast is the socket's, field for field
    if protocol.frame_type(data) != kind:
        raise protocol.FrameError(protocol.UNKNOWN_TYPE, f'only "{kind}" frames can be sent here')
    return data


async def _post(request: HttpRequest, room: Any, user: Any) -> HttpResponse:
    # Charged before any check, as on the socket: bad requests spend the budget too.
    data: dict[str, Any] = {}
    refused: protocol.FrameError | None = None
    try:
        data = _frame(request)
    except protocol.FrameError as exc:
        refused = exc
    if not (await chat_actions.spend(user_id=user.pk, kind="message")).allowed:
        refused = protocol.rate_limited(data)  # over HTTP a flood is refused the same way
    if refused is not None:
        raise refused
    message = protocol.message_in(data)
    try:
        stored, created = await chat_actions.post(room, user, message)
    except protocol.FrameError:
        raise
    except Exception:
        # A database error, say: nothing was stored that a retry with the same
        # client_msg_id would not deduplicate.
        logger.exception("chat message over HTTP from user %s failed", user.pk)
        raise protocol.unavailable(data) from None
    status = 201 if created else 200
    return JsonResponse({"message": stored, "duplicate": not created}, status=status)


async def message(request: HttpRequest, slug: str, message_id: int) -> HttpResponse:
    """`/api/chat/rooms/<slug>/messages/<id>/`: PATCH an `edit` frame's body (`{"content"}`)
    to edit one's message, DELETE to delete it; as the socket's `edit` and `delete` frames."""
    if request.method not in ("PATCH", "DELETE"):
        return _not_allowed(request, "PATCH, DELETE")
    user, room, refusal = await _room_for(request, slug)
    if refusal is not None:
        return refusal
    kind = "edit" if request.method == "PATCH" else "delete"
    try:
        data: dict[str, Any] = {}
        refused: protocol.FrameError | None = None
        if kind == "edit":
            try:
                data = _frame(request, kind)
            except protocol.FrameError as exc:
                refused = exc
        if not (await chat_actions.spend(user_id=user.pk, kind=kind)).allowed:
            refused = protocol.rate_limited(data)
        if refused is not None:
            raise refused
        data["id"] = message_id
        if kind == "delete":
            await chat_actions.delete(room, user, protocol.target_in(data))
            return HttpResponse(status=204)
        edited = await chat_actions.edit(room, user, protocol.edit_in(data))
        return JsonResponse({"message": edited})
    except protocol.FrameError as exc:
        return _refused(exc)


async def read(request: HttpRequest, slug: str) -> HttpResponse:
    """`POST /api/chat/rooms/<slug>/read/` with a `read` frame's body (`{"id"}`): move the
    user's read marker, as the socket's `read` frame does (for tabs without a socket)."""
    if request.method != "POST":
        return _not_allowed(request, "POST")
    user, room, refusal = await _room_for(request, slug)
    if refusal is not None:
        return refusal
    try:
        data: dict[str, Any] = {}
        refused: protocol.FrameError | None = None
        try:
            data = _frame(request, "read")
        except protocol.FrameError as exc:
            refused = exc
        if not (await chat_actions.spend(user_id=user.pk, kind="read")).allowed:
            refused = protocol.rate_limited(data)
        if refused is not None:
            raise refused
        moved = await chat_actions.read(room, user, protocol.target_in(data))
        return JsonResponse({"read": moved})
    except protocol.FrameError as exc:
        return _refused(exc)
