"""The pages email links lead to: open a notification (marking it read), unsubscribe."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from notifications import kinds, preferences, services
from notifications.emails.links import BadUnsubscribeLink, unsubscribe_read
from notifications.models import EmailMode, Notification, is_link_url


@login_required
def open_notification(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Mark the notification read and go where it points (the inbox if nowhere)."""
    try:
        services.notification_mark_read(user=request.user, notification_id=notification_id)
    except Notification.DoesNotExist:
        raise Http404("no such notification of yours") from None
    url = Notification.objects.filter(pk=notification_id).values_list("url", flat=True).first()
    return redirect(url if url and is_link_url(url) else "notifications:inbox")


# No session and no CSRF token: the signed link is the credential, and mail providers POST
# RFC 8058's one-click unsubscribe (`List-Unsubscribe=One-Click`) without cookies.
@csrf_exempt
@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """GET: ask to confirm (link scanners must not unsubscribe anyone); POST: turn email off."""
    try:
        user_id, categories = unsubscribe_read(token)
        user = get_user_model().objects.get(pk=user_id)
    except BadUnsubscribeLink as exc:
        return _page(request, error=str(exc), status=400)
    except get_user_model().DoesNotExist:
        return _page(request, error="This unsubscribe link is not valid.", status=400)
    labels = [_label(c) for c in categories]
    if request.method == "GET":
        return _page(request, labels=labels)
    changes = {c: {"email": EmailMode.OFF} for c in categories if c in kinds.categories()}
    kept = [c for c in changes if preferences.locked_reason(c)]
    try:
        preferences.preferences_update(
            user=user, data={"categories": {c: v for c, v in changes.items() if c not in kept}}
        )
    except ValidationError as exc:
        return _page(request, error=exc.messages[0], status=400)
    return _page(request, labels=labels, done=True, kept=[_label(c) for c in kept])


def _label(category: str) -> str:
    members = kinds.categories().get(category, [])
    return members[0].label if len(members) == 1 else category


def _page(request: HttpRequest, *, status: int = 200, **context: object) -> HttpResponse:
    return render(request, "notifications/unsubscribe.html", context, status=status)
