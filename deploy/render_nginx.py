#!/usr/bin/env python3
"""Render deploy/nginx/pulse.conf into an nginx site: `python deploy/render_nginx.py --help`.

Standard library only, so it runs before the app's virtualenv exists. Operators and the
tests (tests/support/nginx.py) render the same template with it.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "pulse.conf"
PLACEHOLDER = re.compile(r"\{\{ (\w+) \}\}")
SECTION = re.compile(r"^\s*# (tls|plain): (begin|end)\n", re.MULTILINE)
# A value that could end a directive or open a block would let input rewrite the config.
UNSAFE = re.compile(r"[;{}\n\r#'\"`$\\]")
# nginx skips a process that refused a connection for this long, then sends it one request
# and waits for that to finish before it sends more (README, rolling restarts).
FAIL_TIMEOUT_SECONDS = 5


def upstream_lines(upstreams: list[str], *, fail_timeout: int = FAIL_TIMEOUT_SECONDS) -> str:
    """One `server` line per process address (host:port)."""
    if not upstreams:
        raise ValueError("at least one upstream (host:port) is needed")
    lines = []
    for address in upstreams:
        host, sep, port = address.rpartition(":")
        if not sep or not host or not port.isdigit() or UNSAFE.search(address):
            raise ValueError(f"upstream must be host:port, got {address!r}")
        lines.append(f"    server {address} max_fails=1 fail_timeout={fail_timeout}s;")
    return "\n".join(lines)


def allow_lines(addresses: list[str]) -> str:
    """`allow` lines for the scraper addresses (an IP or a CIDR each) of /metrics."""
    for address in addresses:
        if not re.fullmatch(r"[0-9A-Fa-f.:]+(/\d{1,3})?", address):
            raise ValueError(f"--metrics-allow takes an address or CIDR, got {address!r}")
    if not addresses:
        return "        # nobody: render with --metrics-allow ADDRESS for a scraper"
    return "\n".join(f"        allow {address};" for address in addresses)


def keep_sections(text: str, keep: str) -> str:
    """Drop the lines of the sections not named `keep`, and every section marker."""
    out, inside = [], None
    for line in text.splitlines(keepends=True):
        marker = SECTION.match(line)
        if marker:
            inside = marker.group(1) if marker.group(2) == "begin" else None
            continue
        if inside is None or inside == keep:
            out.append(line)
    return "".join(out)


def render(
    *,
    upstreams: list[str],
    listen: str,
    server_name: str,
    static_root: str,
    tls_certificate: str = "",
    tls_certificate_key: str = "",
    http_listen: str = "80",
    metrics_allow: list[str] | None = None,
    template: Path = TEMPLATE,
) -> str:
    """The site config; TLS when a certificate is given, plain HTTP otherwise."""
    tls = bool(tls_certificate or tls_certificate_key)
    if tls and not (tls_certificate and tls_certificate_key):
        raise ValueError("TLS needs both a certificate and its key")
    values = {
        "upstream_servers": upstream_lines(upstreams),
        "listen": listen,
        "server_name": server_name,
        "static_root": static_root.rstrip("/"),
        "tls_certificate": tls_certificate,
        "tls_certificate_key": tls_certificate_key,
        "http_listen": http_listen,
    }
    for name, value in values.items():
        if name != "upstream_servers" and UNSAFE.search(value):
            raise ValueError(f"{name} may not contain ; {{ }} # quotes $ or line breaks")
    values["metrics_allow"] = allow_lines(metrics_allow or [])
    text = keep_sections(template.read_text(), "tls" if tls else "plain")

    def fill(match: re.Match[str]) -> str:
        value = values.get(match.group(1))
        if not value:
            raise ValueError(f"no value for {{{{ {match.group(1)} }}}}")
        return value

    return PLACEHOLDER.sub(fill, text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--upstream",
        action="append",
        required=True,
        metavar="HOST:PORT",
        help="a server process (repeat for each: 127.0.0.1:8001 ...)",
    )
    parser.add_argument("--server-name", required=True, help="e.g. pulse.example.com")
    parser.add_argument("--listen", help="default: 443 with TLS, 80 without")
    parser.add_argument(
        "--http-listen", default="80", help="with TLS: where plain HTTP is redirected from"
    )
    parser.add_argument("--static-root", default="/srv/pulse/staticfiles")
    parser.add_argument(
        "--metrics-allow",
        action="append",
        default=[],
        metavar="ADDRESS",
        help="a Prometheus scraper's address or CIDR that may read /metrics (repeatable)",
    )
    parser.add_argument("--tls-certificate", default="", metavar="PATH")
    parser.add_argument("--tls-certificate-key", default="", metavar="PATH")
    parser.add_argument(
        "--no-tls",
        action="store_true",
        help="plain HTTP (local use, or TLS terminated in front of this nginx)",
    )
    args = parser.parse_args(argv)
    tls = bool(args.tls_certificate or args.tls_certificate_key)
    if tls == args.no_tls:
        parser.error("give --tls-certificate and --tls-certificate-key, or --no-tls")
    try:
        sys.stdout.write(
            render(
                upstreams=args.upstream,
                listen=args.listen or ("443" if tls else "80"),
                server_name=args.server_name,
                static_root=args.static_root,
                tls_certificate=args.tls_certificate,
                tls_certificate_key=args.tls_certificate_key,
                http_listen=args.http_listen,
                metrics_allow=args.metrics_allow,
            )
        )
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
