"""Server-rendered pages: the inbox; the bell lives in the base template."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from notifications import selectors


@login_required
def inbox(request: HttpRequest) -> HttpResponse:
    page = selectors.notification_list(user_id=request.user.pk, limit=30)
    announcements = selectors.announcement_list(user_id=request.user.pk)
    context = {"page": page, "announcements": announcements}
    return render(request, "notifications/inbox.html", context)
