"""The live activity feed: the page (`/feed/`) and its JSON history (`/api/feed/`)."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django_eventstream.utils import make_id

from feeds import activity_selectors
from feeds.activity_events import ACTIVITY_CHANNEL
from notifications.channels import channels_for_user
from notifications.http import int_param, json_error, login_required_json, require_get
from notifications.storage import stream_position

PAGE_SIZE = 30


@require_GET
@login_required
def feed(request: HttpRequest) -> HttpResponse:
    channels = [*channels_for_user(request.user), ACTIVITY_CHANNEL]
    # The stream position first: an item added while the page renders is replayed (and
    # deduplicated by the page), never lost between the two.
    start = make_id(stream_position(channels))
    context = {
        "page": activity_selectors.activity_list(limit=PAGE_SIZE),
        "stream_channels": " ".join(channels),
        "stream_start": start,
    }
    return render(request, "feeds/feed.html", context)


@require_get
@login_required_json
def feed_history(request: HttpRequest) -> HttpResponse:
    try:
        before = int_param(request, "before", minimum=1, maximum=2**63 - 1)
        limit = int_param(request, "limit", minimum=1, maximum=activity_selectors.MAX_PAGE)
    except ValueError as exc:
        return json_error(400, str(exc))
    return JsonResponse(activity_selectors.activity_list(before=before, limit=limit or PAGE_SIZE))
