"""Who a bulk send goes to: resolved and checked before anything is written.

Recipients are read a batch of ids at a time, so memory does not grow with the audience:
`--all` and `--group` page through a queryset by id; a named audience (`--users`,
`--file`) is held as an array of ids, 8 bytes per recipient, never as user objects.
"""

from __future__ import annotations

import csv
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import QuerySet

from notifications.models import Notification

NAME_CHUNK = 500
MAX_LISTED = 20
# Unknown names are echoed back: a few, cut short, since `--file` may name any file the
# operator can read (a secrets file given by mistake would otherwise be printed).
UNKNOWN_LISTED = 5
NAME_SHOWN = 40
SAMPLE_SIZE = 10


class AudienceError(ValueError):
    """Bad audience input; the message is written for the operator."""


def _active_users() -> QuerySet:
    return get_user_model().objects.filter(is_active=True)


@dataclass
class Recipients:
    """Active users in id order: `ids` for a named audience, else `queryset` selects them."""

    description: str
    queryset: QuerySet
    ids: array | None = None
    inactive: list[str] = field(default_factory=list)  # named, but skipped

    def count(self) -> int:
        return len(self.ids) if self.ids is not None else self.queryset.count()

    def batches(self, size: int) -> Iterator[list[int]]:
        """Lists of at most `size` active user ids, ascending, one query each."""
        if self.ids is not None:
            for start in range(0, len(self.ids), size):
                window = self.ids[start : start + size].tolist()
                # Re-filtered: someone may have been deactivated since the check.
                batch = list(self.queryset.filter(pk__in=window).values_list("pk", flat=True))
                if batch:
                    yield sorted(batch)
            return
        last = 0
        while batch := list(
            self.queryset.filter(pk__gt=last).order_by("pk").values_list("pk", flat=True)[:size]
        ):
            yield batch
            last = batch[-1]

    def already_sent(self, send_key: str) -> int:
        """How many of them already have a notification tagged `send_key`."""
        sent = Notification.objects.filter(send_key=send_key)
        if self.ids is None:
            return sent.filter(recipient_id__in=self.queryset.values("pk")).count()
        return sum(
            sent.filter(recipient_id__in=self.ids[i : i + NAME_CHUNK].tolist()).count()
            for i in range(0, len(self.ids), NAME_CHUNK)
        )

    def sample(self) -> list[str]:
        qs = self.queryset
        if self.ids is not None:
            qs = qs.filter(pk__in=self.ids[:SAMPLE_SIZE].tolist())
        return list(qs.order_by("pk").values_list("username", flat=True)[:SAMPLE_SIZE])


def everyone() -> Recipients:
    return Recipients("all active users", _active_users())


def group_members(names: list[str]) -> Recipients:
    """Active members of the named groups (each user once); unknown names are an error."""
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    if not names:
        raise AudienceError("--group needs at least one group name")
    groups = list(Group.objects.filter(name__in=names))
    unknown = [n for n in names if n not in {g.name for g in groups}]
    if unknown:
        raise AudienceError(f"unknown group{_s(unknown)}: {', '.join(unknown)}")
    qs = _active_users().filter(groups__in=groups).distinct()
    return Recipients(f"members of {', '.join(names)}", qs)


def named_users(names: Iterable[tuple[str, str]], *, description: str) -> Recipients:
    """Resolve (where, username) pairs; every unknown name is an error, listed with `where`."""
    found = array("q")
    unknown: list[str] = []
    unknown_count = 0
    inactive: list[str] = []
    user_model = get_user_model()
    for chunk in _chunks(iter(names), NAME_CHUNK):
        users = user_model.objects.filter(username__in={name for _, name in chunk})
        by_name = {
            u: (pk, active) for u, pk, active in users.values_list("username", "pk", "is_active")
        }
        for where, name in chunk:
            hit = by_name.get(name)
            if hit is None:
                unknown_count += 1
                if len(unknown) < UNKNOWN_LISTED:
                    unknown.append(f"{_shorten(name)} ({where})" if where else _shorten(name))
            elif hit[1]:
                found.append(hit[0])
            elif len(inactive) < MAX_LISTED:
                inactive.append(name)
    if unknown_count:
        more = f" and {unknown_count - len(unknown)} more" if unknown_count > len(unknown) else ""
        raise AudienceError(
            f"{unknown_count} unknown username{'s' if unknown_count > 1 else ''}: "
            f"{', '.join(unknown)}{more}"
        )
    ids = array("q", sorted(set(found)))  # a name listed twice still gets one notification
    return Recipients(description, _active_users(), ids=ids, inactive=inactive)


def usernames_argument(values: list[str]) -> list[tuple[str, str]]:
    """`--users a,b --users c` as (where, username) pairs."""
    names = [n.strip() for value in values for n in value.split(",") if n.strip()]
    if not names:
        raise AudienceError("--users needs at least one username")
    return [("", name) for name in names]


def usernames_csv(path: str) -> Iterator[tuple[str, str]]:
    """(line, username) from a CSV file: one username per line, or a `username` header column.

    Blank lines are skipped; anything else malformed is an error naming its line.
    """
    try:
        handle = open(path, newline="", encoding="utf-8-sig")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise AudienceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    reader = csv.reader(handle, strict=True)
    column, width, first = 0, 1, True
    try:
        with handle:
            for row in reader:
                line = reader.line_num
                cells = [cell.strip() for cell in row]
                if not any(cells):
                    continue
                header = [c.lower() for c in cells]
                if first and "username" in header:
                    column, width = header.index("username"), len(cells)
                    first = False
                    continue
                first = False
                if len(cells) != width:
                    raise AudienceError(
                        f"{path}, line {line}: expected {width} column{'s' if width > 1 else ''}, "
                        f"got {len(cells)} (give one username per line, or a header row "
                        "naming a `username` column)"
                    )
                if not cells[column]:
                    raise AudienceError(f"{path}, line {line}: empty username")
                yield f"line {line}", cells[column]
    except csv.Error as exc:
        raise AudienceError(f"{path}, line {reader.line_num}: malformed CSV ({exc})") from exc
    except UnicodeDecodeError as exc:
        raise AudienceError(f"{path}, after line {reader.line_num}: not UTF-8 text") from exc
    except OSError as exc:
        raise AudienceError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _chunks(items: Iterator[tuple[str, str]], size: int) -> Iterator[list[tuple[str, str]]]:
    while chunk := list(islice(items, size)):
        yield chunk


def _shorten(name: str) -> str:
    """At most NAME_SHOWN characters of a name, with no terminal control characters."""
    shown = "".join(c if c.isprintable() else "?" for c in name[:NAME_SHOWN])
    return shown if len(name) <= NAME_SHOWN else shown + "…"


def _s(items: list) -> str:
    return "s" if len(items) > 1 else ""
