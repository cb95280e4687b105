"""Where Redis Sentinel says the primary is: the settings that point Pulse at it.

Two spellings, one result (a `SentinelConfig`, or None for a plain REDIS_URL):
- `REDIS_SENTINELS=host:port,host:port,...` with `REDIS_SENTINEL_MASTER=<name>`
  (`REDIS_PASSWORD` for the primary, `REDIS_DB` for its database number);
- `REDIS_URL=redis+sentinel://[:password@]host:port,host:port/<name>[/<db>]`.
`REDIS_SENTINEL_PASSWORD` authenticates to the sentinels themselves, in either case.
Malformed values raise ImproperlyConfigured naming the setting and the bad entry, so a
process refuses to start instead of failing later on its first Redis call.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from urllib.parse import unquote

from django.core.exceptions import ImproperlyConfigured

SCHEME = "redis+sentinel"
DEFAULT_PORT = 26379  # Sentinel's own default
_MASTER_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


@dataclass(frozen=True)
class SentinelConfig:
    sentinels: tuple[tuple[str, int], ...]
    master: str
    db: int = 0
    password: str | None = None  # the primary's (and replicas')
    sentinel_password: str | None = None


def parse_sentinels(raw: str, setting: str) -> tuple[tuple[str, int], ...]:
    """`host:port,host:port` (a bare host means port 26379; IPv6 as `[::1]:26379`)."""
    entries = [entry.strip() for entry in raw.split(",")]
    if not any(entries):
        raise ImproperlyConfigured(f"{setting} must list at least one sentinel as host:port")
    return tuple(_parse_entry(entry, setting) for entry in entries)


def _parse_entry(entry: str, setting: str) -> tuple[str, int]:
    if not entry:
        raise ImproperlyConfigured(f"{setting} has an empty entry (a stray comma?)")
    if entry.startswith("["):
        host, sep, rest = entry[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ImproperlyConfigured(f"{setting}: {entry!r} is not [ipv6]:port")
        port_text = rest[1:]
    else:
        host, _, port_text = entry.partition(":")
        if ":" in port_text:
            raise ImproperlyConfigured(f"{setting}: write IPv6 hosts as [addr]:port, not {entry!r}")
    if not host or any(c.isspace() or c in "/@?#" for c in host):
        raise ImproperlyConfigured(f"{setting}: {entry!r} has no valid host")
    if not port_text:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ImproperlyConfigured(f"{setting}: {entry!r} has no valid port (1-65535)")
    return host, int(port_text)


def _master(name: str, setting: str) -> str:
    if not _MASTER_NAME.fullmatch(name):
        raise ImproperlyConfigured(
            f"{setting} must name the Sentinel master (letters, digits, '.', '_', '-'), "
            f"got {name!r}"
        )
    return name


def _db(text: str, setting: str) -> int:
    if not text.isdigit():
        raise ImproperlyConfigured(f"{setting} must be a database number, got {text!r}")
    return int(text)


def from_url(url: str) -> SentinelConfig:
    """Parse `redis+sentinel://[:password@]host:port,.../<master>[/<db>]`."""
    # Split by hand: urllib.parse takes one host, and Python 3.13 refuses a list with an
    # [IPv6] entry in it.
    rest = url.removeprefix(f"{SCHEME}://")
    if "?" in rest or "#" in rest:
        raise ImproperlyConfigured("REDIS_URL: a redis+sentinel URL takes no ?query or #fragment")
    netloc, _, path_text = rest.partition("/")
    auth, _, hosts = netloc.rpartition("@")
    password = unquote(auth.partition(":")[2]) if auth else None
    path = [segment for segment in path_text.split("/") if segment]
    if not path or len(path) > 2:
        raise ImproperlyConfigured(
            "REDIS_URL: a redis+sentinel URL ends in /<master name>[/<db>], "
            f"e.g. {SCHEME}://127.0.0.1:26379/mymaster/0"
        )
    return SentinelConfig(
        sentinels=parse_sentinels(hosts, "REDIS_URL"),
        master=_master(path[0], "REDIS_URL (its path)"),
        db=_db(path[1], "REDIS_URL (its second path part)") if len(path) > 1 else 0,
        password=password or None,
        sentinel_password=os.environ.get("REDIS_SENTINEL_PASSWORD") or None,
    )


def from_environment(redis_url: str) -> SentinelConfig | None:
    """The Sentinel setup the environment asks for, or None for a plain REDIS_URL."""
    raw = os.environ.get("REDIS_SENTINELS", "")
    if redis_url.startswith(f"{SCHEME}://"):
        if raw:
            raise ImproperlyConfigured(
                "set REDIS_SENTINELS or a redis+sentinel REDIS_URL, not both"
            )
        return from_url(redis_url)
    if not raw:
        if os.environ.get("REDIS_SENTINEL_MASTER"):
            raise ImproperlyConfigured("REDIS_SENTINEL_MASTER is set but REDIS_SENTINELS is not")
        return None
    if redis_url:
        raise ImproperlyConfigured("set REDIS_URL or REDIS_SENTINELS, not both")
    return SentinelConfig(
        sentinels=parse_sentinels(raw, "REDIS_SENTINELS"),
        master=_master(os.environ.get("REDIS_SENTINEL_MASTER", ""), "REDIS_SENTINEL_MASTER"),
        db=_db(os.environ.get("REDIS_DB", "0"), "REDIS_DB"),
        password=os.environ.get("REDIS_PASSWORD") or None,
        sentinel_password=os.environ.get("REDIS_SENTINEL_PASSWORD") or None,
    )
