"""The links in notification emails: open-and-mark-read, and the signed one-click unsubscribe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.conf import settings
from django.core import signing
from django.urls import reverse

_SALT = "notifications.emails.unsubscribe"
# An unsubscribe link works this long after the email was sent.
UNSUBSCRIBE_MAX_AGE = 90 * 24 * 3600


class BadUnsubscribeLink(Exception):
    """A link that was changed, cut short or is too old: nothing is changed for it."""


def absolute(path: str) -> str:
    return settings.SITE_URL + path


def open_url(notification_id: int) -> str:
    """Opens the notification in the recipient's session (logging in first) and marks it read."""
    return absolute(reverse("notifications:email-open", args=[notification_id]))


def unsubscribe_url(*, user_id: int, categories: Sequence[str]) -> str:
    token = signing.dumps({"u": user_id, "c": sorted(set(categories))}, salt=_SALT)
    return absolute(reverse("notifications:email-unsubscribe", args=[token]))


def unsubscribe_read(token: str) -> tuple[int, list[str]]:
    """The user id and categories a link was signed for; BadUnsubscribeLink otherwise."""
    try:
        data: Any = signing.loads(token, salt=_SALT, max_age=UNSUBSCRIBE_MAX_AGE)
    except signing.SignatureExpired:
        raise BadUnsubscribeLink("This unsubscribe link has expired.") from None
    except signing.BadSignature:
        raise BadUnsubscribeLink("This unsubscribe link is not valid.") from None
    if not isinstance(data, dict) or not isinstance(data.get("u"), int):
        raise BadUnsubscribeLink("This unsubscribe link is not valid.")
    return data["u"], [c for c in data.get("c", []) if isinstance(c, str)]


def settings_url() -> str:
    return absolute(reverse("notifications:preferences"))
