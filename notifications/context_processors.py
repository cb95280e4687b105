"""Template context for the header bell on every page."""

from typing import Any

from django.conf import settings
from django.http import HttpRequest

from notifications import preferences, selectors


def bell(request: HttpRequest) -> dict[str, Any]:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}
    from notifications.views.stream import stream_start_id

    # The position first: an event landing between the two queries is then replayed
    # (and counted again by its own `unread`) rather than neither counted nor replayed.
    start_id = stream_start_id(request)
    return {
        # The badge counts what is new since the bell was last opened (unseen).
        "bell_unread": selectors.badge_count(user_id=user.pk)["unseen"],
        "stream_start_id": start_id,
        "muted_kinds": " ".join(preferences.muted_kinds(user_id=user.pk)),
    }


def site(request: HttpRequest) -> dict[str, Any]:
    # The demo credentials are printed by `bin/run`; show them only in a DEBUG install.
    return {"show_demo_hint": settings.DEBUG}
