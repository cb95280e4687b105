"""`safe_link`: a stored URL as an href only when it is a path or an http(s) URL."""

from django import template

from notifications.models import is_link_url

register = template.Library()


@register.filter
def safe_link(url: str | None) -> str:
    """Return the URL, or "" for one no page should link to (a row written around validation)."""
    return url if url and is_link_url(url) else ""
