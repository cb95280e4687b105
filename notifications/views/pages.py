"""Server-rendered pages: the inbox and notification settings; the bell is in the base template."""

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect, render

from notifications import kinds, preferences, selectors
from notifications.models import EmailMode


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    page = selectors.notification_list(user_id=request.user.pk, limit=30)
    announcements = selectors.announcement_list(user_id=request.user.pk)
    context = {"page": page, "announcements": announcements}
    return render(request, "notifications/inbox.html", context)


@login_required
def preferences_page(request: HttpRequest) -> HttpResponse:
    """The settings form: the same document and checks as PUT /api/preferences/."""
    error = ""
    if request.method == "POST":
        try:
            preferences.preferences_update(user=request.user, data=_from_form(request.POST))
        except ValidationError as exc:
            error = exc.messages[0]
        else:
            return redirect(f"{request.path}?saved=1")
    context = {
        "prefs": preferences.preferences_get(user_id=request.user.pk),
        "email_modes": EmailMode.choices,
        "time_zones": preferences.time_zones(),
        "error": error,
        "saved": request.GET.get("saved") == "1" and not error,
    }
    return render(request, "notifications/preferences.html", context, status=400 if error else 200)


def _from_form(form: QueryDict) -> dict[str, Any]:
    """The form's fields as the API's document; a locked category's disabled box sends nothing."""
    categories: dict[str, dict[str, Any]] = {}
    for category in kinds.categories():
        values: dict[str, Any] = {"email": form.get(f"email-{category}", "")}
        if preferences.locked_reason(category) is None:
            values["in_app"] = f"in_app-{category}" in form
        categories[category] = values
    start, end = form.get("quiet_start", ""), form.get("quiet_end", "")
    return {
        "categories": categories,
        "pause_email": "pause_email" in form,
        "quiet_hours": {"start": start, "end": end} if start or end else None,
        "time_zone": form.get("time_zone", ""),
    }
