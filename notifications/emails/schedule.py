"""When an email is due: the kind's delay, the next digest time, quiet hours, in the user's zone."""

from __future__ import annotations

import zoneinfo
from datetime import datetime, time, timedelta

from notifications.models import EmailMode, NotificationSettings

# Daily digests go out at this local time of the user's zone.
DAILY_DIGEST_AT = time(8, 0)


def zone(name: str) -> zoneinfo.ZoneInfo:
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


def due_at(*, mode: str, created_at: datetime, delay: int, time_zone: str) -> datetime:
    """When a notification of this email mode is first due."""
    if mode == EmailMode.IMMEDIATE:
        return created_at + timedelta(seconds=delay)
    local = created_at.astimezone(zone(time_zone))
    if mode == EmailMode.HOURLY:
        return local.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    at = datetime.combine(local.date(), DAILY_DIGEST_AT, local.tzinfo)
    return (
        at
        if at > local
        else datetime.combine(at.date() + timedelta(days=1), DAILY_DIGEST_AT, local.tzinfo)
    )


def quiet_until(settings: NotificationSettings, now: datetime) -> datetime | None:
    """The end of the user's quiet hours if `now` is inside them, else None."""
    start, end = settings.quiet_start, settings.quiet_end
    if start is None or end is None:
        return None
    local = now.astimezone(zone(settings.time_zone))
    t = local.time().replace(tzinfo=None)
    inside = start <= t < end if start < end else (t >= start or t < end)
    if not inside:
        return None
    day = local.date() if t < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, local.tzinfo)
