"""The registry of notification kinds: what each kind is, so users can choose what they get.

A kind (`comment.reply`, `room.mention`, `announcement`) belongs to a category, which is
what preferences are set on; it carries the level its notifications get when the sender
names none, the channels it uses unless a user chose otherwise, and whether users may mute
it at all (security notices may not). Apps register their kinds from AppConfig.ready()
through notifications.api.register_kind().
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured, ValidationError

from notifications.models import KIND_MAX, Level

IN_APP = "in_app"
EMAIL = "email"
CHANNELS = (IN_APP, EMAIL)
# The kind of a notification whose sender named none; it emails what was missed by default.
DEFAULT_KIND = "general"
ANNOUNCEMENT = "announcement"
SECURITY = "account.security"

_NAME = re.compile(r"[a-z][a-z0-9_]*(?:[.-][a-z0-9_]+)*")


class UnknownKind(ValidationError):
    """A kind nobody registered: refused before anything is written."""


@dataclass(frozen=True)
class Kind:
    name: str
    category: str
    level: str = Level.INFO
    channels: tuple[str, ...] = (IN_APP,)
    mutable: bool = True
    label: str = ""
    # Seconds a notification may stay unread (and unseen live) before it is emailed.
    email_delay: int = 600


_kinds: dict[str, Kind] = {}


def register(
    name: str,
    *,
    category: str,
    level: str = Level.INFO,
    channels: tuple[str, ...] = (IN_APP,),
    mutable: bool = True,
    label: str = "",
    email_delay: int = 600,
) -> Kind:
    """Add a kind of notification; call it from an AppConfig.ready().

    `category`: what users set preferences on (several kinds may share one). `level`: what
    notify() uses when given none. `channels`: IN_APP and/or EMAIL, used unless the user
    chose otherwise. `mutable=False`: users cannot turn it off (security notices).
    Registering the same definition twice is harmless; another under a taken name is not.
    """
    for value, what in ((name, "kind"), (category, "category")):
        if not _NAME.fullmatch(value) or len(value) > KIND_MAX:
            raise ImproperlyConfigured(
                f"{what} {value!r} must be lowercase words joined by . or -, "
                f"at most {KIND_MAX} characters"
            )
    if level not in Level.values:
        raise ImproperlyConfigured(f"level must be one of {', '.join(Level.values)}")
    if not set(channels) <= set(CHANNELS):
        raise ImproperlyConfigured(f"channels must be among {', '.join(CHANNELS)}")
    if email_delay < 0:
        raise ImproperlyConfigured("email_delay must be 0 or more seconds")
    kind = Kind(name, category, level, tuple(channels), mutable, label or name, email_delay)
    if _kinds.setdefault(name, kind) != kind:
        raise ImproperlyConfigured(f"notification kind {name!r} is already registered otherwise")
    return kind


def get(name: str) -> Kind:
    """The registered kind of that name; UnknownKind (a ValidationError) if there is none."""
    try:
        return _kinds[name]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_kinds))
        raise UnknownKind(f"unknown notification kind {name!r}; registered: {known}") from None


def all_kinds() -> list[Kind]:
    return sorted(_kinds.values(), key=lambda k: (k.category, k.name))


def categories() -> dict[str, list[Kind]]:
    """Each category with its kinds, in name order."""
    out: dict[str, list[Kind]] = {}
    for kind in all_kinds():
        out.setdefault(kind.category, []).append(kind)
    return out


def register_builtin() -> None:
    """The kinds this app sends itself, and the default for senders that name none."""
    register(
        DEFAULT_KIND, category="general", channels=(IN_APP, EMAIL), label="General notifications"
    )
    register(ANNOUNCEMENT, category="announcements", label="Announcements from staff")
    register(
        SECURITY,
        category="account",
        level=Level.WARNING,
        channels=(IN_APP, EMAIL),
        mutable=False,
        label="Security notices about your account",
    )
