"""The notifications JSON API (session auth, CSRF on writes, JSON errors)."""

from __future__ import annotations

import json
from collections.abc import Callable

from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from notifications import kinds, preferences, selectors, services
from notifications.health import snapshot as health_snapshot
from notifications.http import (
    int_param,
    json_error,
    login_required_json,
    require_get,
    require_methods,
    require_post,
    wants_json,
)
from notifications.models import Announcement, Notification

DEFAULT_LIMIT = 20


def _unread_param(request: HttpRequest) -> bool:
    raw = request.GET.get("unread", "")
    if raw not in ("", "0", "1", "true", "false"):
        raise ValueError("unread must be 1 or 0")
    return raw in ("1", "true")


def _kind_param(request: HttpRequest) -> str | None:
    raw = request.GET.get("kind")
    if raw is None:
        return None
    try:
        return kinds.get(raw).name
    except kinds.UnknownKind as exc:
        raise ValueError(exc.messages[0]) from None


def _state_param(request: HttpRequest) -> str | None:
    raw = request.GET.get("state")
    if raw is None:
        return None
    if raw not in selectors.STATES:
        raise ValueError(f"unknown state {raw[:50]!r}; states: {', '.join(selectors.STATES)}")
    return raw


@require_get
@login_required_json
def notification_list(request: HttpRequest) -> HttpResponse:
    try:
        unread = _unread_param(request)
        state = _state_param(request)
        kind = _kind_param(request)
        before = int_param(request, "before", minimum=1, maximum=2**63 - 1)
        limit = int_param(request, "limit", minimum=1, maximum=selectors.MAX_PAGE)
    except ValueError as exc:
        return json_error(400, str(exc))
    page = selectors.notification_list(
        user_id=request.user.pk,
        unread=unread,
        state=state,
        kind=kind,
        before=before,
        limit=limit or DEFAULT_LIMIT,
    )
    return JsonResponse(page)


@require_get
@login_required_json
def unread_count(request: HttpRequest) -> HttpResponse:
    return JsonResponse(selectors.badge_count(user_id=request.user.pk))


@require_post
@login_required_json
def mark_seen(request: HttpRequest) -> HttpResponse:
    """The bell was opened: what it showed (`?through=<newest id shown>`, else everything)
    is seen, and the badge (`unseen`) counts only what came after."""
    through = request.GET.get("through")
    if through is not None and not (through.isascii() and through.isdigit()):
        return json_error(400, "through must be a notification id")
    counts = services.notifications_mark_seen(
        user=request.user, through=int(through) if through else None
    )
    return JsonResponse(counts)


# The inbox actions on one notification: POST /api/notifications/<id>/<action>/.
_ACTIONS = {
    "unread": services.notification_mark_unread,
    "archive": services.notification_archive,
    "unarchive": services.notification_unarchive,
}


@require_post
@login_required_json
def inbox_action(request: HttpRequest, notification_id: str, action: str) -> HttpResponse:
    return _on_own(request, _ACTIONS[action], int(notification_id))


@require_methods("DELETE")
@login_required_json
def notification_delete(request: HttpRequest, notification_id: int) -> HttpResponse:
    return _on_own(request, services.notification_delete, notification_id)


def _on_own(
    request: HttpRequest, change: Callable[..., dict[str, int]], notification_id: int
) -> HttpResponse:
    """Run an inbox service on one of the user's notifications; another's id → 404."""
    try:
        return JsonResponse(change(user=request.user, notification_id=notification_id))
    except Notification.DoesNotExist:
        return json_error(404, "no such notification")


@require_post
@login_required_json
def mark_read(request: HttpRequest, notification_id: int) -> HttpResponse:
    return _on_own(request, services.notification_mark_read, notification_id)


@require_post
@login_required_json
def mark_all_read(request: HttpRequest) -> HttpResponse:
    return JsonResponse(services.notification_mark_all_read(user=request.user))


@require_get
@login_required_json
def announcement_list(request: HttpRequest) -> HttpResponse:
    try:
        unread = _unread_param(request)
    except ValueError as exc:
        return json_error(400, str(exc))
    results = selectors.announcement_list(user_id=request.user.pk, unread=unread)
    return JsonResponse({"results": results, **selectors.badge_count(user_id=request.user.pk)})


@require_post
@login_required_json
def announcement_mark_read(request: HttpRequest, announcement_id: int) -> HttpResponse:
    try:
        counts = services.announcement_mark_read(user=request.user, announcement_id=announcement_id)
    except Announcement.DoesNotExist:
        return json_error(404, "no such announcement")
    return JsonResponse(counts)


@require_methods("GET", "PUT")
@login_required_json
def preferences_view(request: HttpRequest) -> HttpResponse:
    """GET the user's notification preferences; PUT changes (the keys given) of them."""
    if request.method == "GET":
        return JsonResponse(preferences.preferences_get(user_id=request.user.pk))
    try:
        data = json.loads(request.body)
    except (ValueError, UnicodeDecodeError):
        return json_error(400, "the body must be a JSON object")
    try:
        return JsonResponse(preferences.preferences_update(user=request.user, data=data))
    except ValidationError as exc:
        return json_error(400, exc.messages[0])


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF rejections as JSON for API callers; for people, a page that says what to do."""
    if wants_json(request) or "application/json" in request.headers.get("Accept", ""):
        return json_error(403, f"CSRF check failed: {reason}")
    return render(request, "403_csrf.html", {"reason": reason}, status=403)


@require_get
@login_required_json
def health(request: HttpRequest) -> HttpResponse:
    """Gauges of the answering process (staff only: they describe the deployment)."""
    if not request.user.is_staff:
        return json_error(403, "staff only")
    return JsonResponse(health_snapshot())
