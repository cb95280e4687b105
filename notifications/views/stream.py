"""`GET /events/`: the SSE endpoint, behind session auth and per-channel access checks.

The view checks what django-eventstream would get wrong or answer with a 200 error event:
anonymous users and foreign channels get a 403, a malformed `Last-Event-ID` a 400. It
then opens a stream from an explicit position: the first bytes carry an `id:` line, so a
client whose first connection drops before any event still resumes from the right place
instead of skipping what happened in between. The stream itself is served by the
process's hub (realtime.sse, realtime.hub), directly on the ASGI connection when the
request came through realtime.sse_asgi.SSEStreams, through Django otherwise.
"""

from __future__ import annotations

import random
import re
import uuid
from urllib.parse import unquote

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django_eventstream.utils import make_id

from notifications.channels import ChannelsRefused, channels_for_user, readable_channels
from notifications.http import json_error, require_get
from notifications.storage import stream_position
from realtime import connection_caps
from realtime.connection_caps import SSE
from realtime.sse import Connection, frames
from realtime.sse_asgi import claim_stream
from realtime.wire import RETRY_MS

MAX_EVENT_ID_LENGTH = 2000
_ID_PART = re.compile(r"([A-Za-z0-9%._~-]{1,200}):([0-9]{1,18})")


class BadEventId(ValueError):
    pass


def parse_event_id(raw: str) -> dict[str, int]:
    """Parse `chan:id,chan:id` (channel names URL-quoted); raise BadEventId otherwise."""
    if len(raw) > MAX_EVENT_ID_LENGTH:
        raise BadEventId("Last-Event-ID is too long")
    out: dict[str, int] = {}
    for part in raw.split(","):
        match = _ID_PART.fullmatch(part.strip())
        if not match:
            raise BadEventId("Last-Event-ID must look like channel:id[,channel:id...]")
        out[unquote(match[1])] = int(match[2])
    return out


def _client_event_id(request: HttpRequest) -> str:
    header = request.headers.get("Last-Event-ID", "")
    if header:
        return header
    for value in reversed(request.GET.getlist("lastEventId")):
        if value:
            return value
    return ""


@require_get
def events(request: HttpRequest) -> HttpResponse:
    if not request.user.is_authenticated:
        return json_error(403, "authentication required")
    try:
        channels = readable_channels(request)
    except ChannelsRefused as exc:
        return json_error(exc.status, str(exc), **exc.extra)

    raw_id = _client_event_id(request)
    try:
        client_ids = parse_event_id(raw_id) if raw_id else {}
    except BadEventId as exc:
        return json_error(400, str(exc))
    cap_id = uuid.uuid4().hex
    if not connection_caps.acquire(kind=SSE, user_id=request.user.pk, conn_id=cap_id):
        limit = connection_caps.cap(SSE)
        return json_error(429, f"too many streams: at most {limit} per user; close some tabs")
    start = stream_position([c for c in channels if c not in client_ids])
    start.update({c: i for c, i in client_ids.items() if c in channels})

    connection = Connection(
        user_id=request.user.pk,
        session_key=request.session.session_key,  # so a logout ends just its streams
        positions=start,
        cap_id=cap_id,  # released when the stream ends (realtime.sse)
    )
    # A random reconnect delay per stream: after a server restart, thousands of browsers
    # come back spread over seconds instead of in one burst (with 1-5 s, half of 1,000
    # streams came back within the same second after a 3 s restart).
    retry_ms = random.randint(*RETRY_MS)
    prefix = f"id: {make_id(start)}\nretry: {retry_ms}\n\n".encode()
    # Claimed: the first bytes only, a plain list so that realtime.onehop can send them.
    body = [prefix] if claim_stream(connection) else frames(connection, prefix)
    response = StreamingHttpResponse(body, content_type="text/event-stream")
    # django-eventstream's add_default_headers would also add CORS headers from its
    # EVENTSTREAM_ALLOW_* settings: the stream is for this site's own pages only.
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"
    return response


def stream_start_id(request: HttpRequest) -> str:
    """The `lastEventId` a page embeds, so its stream replays what happened after render.

    A page checks `?channel=` as /events/ does: positions are only for channels the user may
    read (another user's would tell when they were notified). A list /events/ would refuse
    renders the page with the user's own channels, the ones its script streams anyway.
    """
    try:
        channels = readable_channels(request)
    except ChannelsRefused:
        channels = channels_for_user(request.user)
    return make_id(stream_position(channels))
