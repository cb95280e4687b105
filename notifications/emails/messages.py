"""The emails themselves: text and HTML from templates, with RFC 8058 one-click unsubscribe."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from notifications import kinds
from notifications.emails import links
from notifications.models import is_link_url

# Items listed in one digest; the rest are counted ("and 12 more").
DIGEST_LISTED = 50


def item(n: dict[str, Any]) -> dict[str, Any]:
    """What a template shows of one notification (a row of `values()`)."""
    return {
        "id": n["id"],
        "title": n["title"],
        "body": n["body"],
        "created_at": n["created_at"],
        "open_url": links.open_url(n["id"]),
        "has_link": is_link_url(n["url"]),
    }


def category_of(kind_name: str) -> str:
    try:
        return kinds.get(kind_name).category
    except kinds.UnknownKind:
        return kinds.get(kinds.DEFAULT_KIND).category


def missed_email(*, to: str, user_id: int, notification: dict[str, Any]) -> EmailMultiAlternatives:
    """The email for one notification the user missed."""
    category = category_of(notification["kind"])
    context = {
        "n": item(notification),
        "category": category,
        "unsubscribe_url": links.unsubscribe_url(user_id=user_id, categories=[category]),
        "settings_url": links.settings_url(),
    }
    return _email(
        to=to,
        subject=notification["title"],
        template="notification",
        context=context,
        message_key=f"notification-{notification['id']}",
    )


def digest_email(
    *, to: str, user_id: int, mode: str, notifications: Sequence[dict[str, Any]], key: str
) -> EmailMultiAlternatives:
    """One email listing a user's unread notifications of digest categories."""
    categories = sorted({category_of(n["kind"]) for n in notifications})
    count = len(notifications)
    context = {
        "items": [item(n) for n in notifications[:DIGEST_LISTED]],
        "more": max(count - DIGEST_LISTED, 0),
        "count": count,
        "mode": mode,
        "categories": categories,
        "unsubscribe_url": links.unsubscribe_url(user_id=user_id, categories=categories),
        "settings_url": links.settings_url(),
    }
    noun = "notification" if count == 1 else "notifications"
    period = "hourly" if mode == "hourly" else "daily"
    return _email(
        to=to,
        subject=f"Your {period} digest: {count} unread {noun}",
        template="digest",
        context=context,
        message_key=f"digest-{key}",
    )


def _email(
    *, to: str, subject: str, template: str, context: dict[str, Any], message_key: str
) -> EmailMultiAlternatives:
    host = urlsplit(settings.SITE_URL).hostname or "localhost"
    headers = {
        "List-Unsubscribe": f"<{context['unsubscribe_url']}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        # The same id on every attempt, so a receiver can tell a retry from a new email.
        "Message-ID": f"<pulse-{message_key}@{host}>",
        "Auto-Submitted": "auto-generated",
    }
    text = render_to_string(f"notifications/email/{template}.txt", context)
    html = render_to_string(f"notifications/email/{template}.html", context)
    message = EmailMultiAlternatives(
        subject=" ".join(subject.split())[:200], body=text, to=[to], headers=headers
    )
    message.attach_alternative(html, "text/html")
    return message
