"""An admin announcement to N connected users: from the staff's POST to every SSE client.

    python -m bench.announce                 # 5,000 clients, 3 repeats (the issue's target)
    python -m bench.announce --quick         # 1,000 clients, 3 repeats
    python -m bench.announce --clients 20 --repeat 1   # the smoke run (tests/bench)

N users, each with their own session, hold an SSE stream (`/events/`, which includes the
public `announcements` channel) to one server process (bench.sse_client, its own
process). A staff user with the view, change and publish permissions does what a browser
does in the Django admin: GET the announcement changelist (session cookie; the page sets
the CSRF cookie and carries the form token), then POST the "Publish now" action
(`action=publish_now`, `_selected_action=<pk>`, token, Origin and Referer) and follow the
redirect. Latency runs from just before the POST is sent to each client's receipt of the
`event: announcement`, so it includes the admin request (queryset with audience
statistics, the UPDATE, commit, log entry), Redis, and the fan-out.

Baseline in the same run, on the same streams: the same kind of draft published by
`notifications.services.announcement_publish` called directly (what
`publish_due_announcements` does), timed from just before the call. Each repeat does
one of each; the figures are medians over the repeats, and the ratio is admin/service.
"""

from __future__ import annotations

import argparse
import http.client
import re
import sys
import time
from http.cookies import SimpleCookie
from typing import Any
from urllib.parse import urlencode

from bench.env import SERVERS, BenchEnv
from bench.ladder import median, save
from bench.procs import SSELoadClient

CHANGELIST = "/admin/notifications/announcement/"
_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
# The SSE load client reads "seq=<n> t=<send time>" from the payload (the title here).
_TITLE = "Bench announcement seq={seq} t={t:.6f}"


class AdminBrowser:
    """The staff user's browser: a cookie jar and one keep-alive connection."""

    def __init__(self, port: int, session: str) -> None:
        self.port = port
        self.origin = f"http://127.0.0.1:{port}"
        self.cookies = {"sessionid": session}
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def request(self, method: str, path: str, body: str = "", **headers: str) -> tuple[int, str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        headers = {"Cookie": cookie, "Host": f"127.0.0.1:{self.port}", **headers}
        self.conn.request(method, path, body=body or None, headers=headers)
        response = self.conn.getresponse()
        text = response.read().decode(errors="replace")
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                self.cookies[name] = morsel.value
        if response.status in (301, 302, 303):
            location = response.headers["Location"]
            return self.request("GET", location, Referer=self.origin + path)
        return response.status, text

    def changelist_token(self) -> str:
        status, page = self.request("GET", CHANGELIST)
        found = _TOKEN.search(page)
        if status != 200 or found is None:
            raise RuntimeError(f"admin changelist: HTTP {status}, no CSRF token:\n{page[:500]}")
        return found[1]

    def publish_now(self, pk: int, token: str) -> tuple[int, str]:
        """POST the changelist's "Publish now" action for one announcement, as the form does."""
        form = {
            "csrfmiddlewaretoken": token,
            "action": "publish_now",
            "select_across": "0",
            "index": "0",
            "_selected_action": str(pk),
        }
        return self.request(
            "POST", CHANGELIST, urlencode(form),
            **{"Content-Type": "application/x-www-form-urlencoded", "Origin": self.origin,
               "Referer": self.origin + CHANGELIST},
        )  # fmt: skip


def make_staff(env: BenchEnv) -> tuple[Any, str]:
    """A staff user who may see, change and publish announcements, and their session."""
    from django.contrib.auth.models import Permission, User

    ((user_id, session),) = env.create_users(1, prefix="staff")
    staff = User.objects.get(pk=user_id)
    staff.is_staff = True
    staff.save(update_fields=["is_staff"])
    codenames = ("view_announcement", "change_announcement", "publish_announcement")
    staff.user_permissions.set(
        Permission.objects.filter(content_type__app_label="notifications", codename__in=codenames)
    )
    return staff, session


def draft(seq: int, staff: Any) -> tuple[Any, float]:
    from notifications.services import announcement_create

    created = time.time()
    title = _TITLE.format(seq=seq, t=created)
    return announcement_create(title=title, body="Maintenance tonight.", created_by=staff), created


def deliveries(client: SSELoadClient, *, seq: int, start: float, created: float, before: int,
               expected: int) -> dict[str, Any]:  # fmt: skip
    """Latencies of announcement `seq`, from `start` (the clients measure from `created`)."""
    client.wait_for(before + expected, timeout=60, idle=5)
    stats = client.stats(seq, seq + 1)
    shift = (start - created) * 1000

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value - shift, 1)

    return {
        "expected": expected,
        "delivered": stats["delivered"],
        "all": stats["delivered"] == expected and not stats["duplicates"],
        "p50_ms": ms(stats["p50_ms"]),
        "p95_ms": ms(stats["p95_ms"]),
        "p99_ms": ms(stats["p99_ms"]),
        "max_ms": ms(stats["max_ms"]),
        "open": stats["open"],
    }


def show(label: str, d: dict[str, Any]) -> None:
    extra = f", admin response {d['response_ms']} ms" if "response_ms" in d else ""
    print(
        f"{label:<8} delivered {d['delivered']}/{d['expected']} "
        f"({'all' if d['all'] else 'LOSS'}): p50 {d['p50_ms']} ms, p95 {d['p95_ms']} ms, "
        f"p99 {d['p99_ms']} ms, max {d['max_ms']} ms{extra}",
        flush=True,
    )


def one_admin(browser: AdminBrowser, client: SSELoadClient, staff: Any, seq: int, n: int):
    from notifications.models import Announcement

    announcement, created = draft(seq, staff)
    token = browser.changelist_token()  # the page the staff user clicks from
    before = client.count()["received"]
    start = time.time()
    status, page = browser.publish_now(announcement.pk, token)
    response_ms = round((time.time() - start) * 1000, 1)
    if status != 200 or "published." not in page:
        raise RuntimeError(f"publish_now: HTTP {status}\n{page[:800]}")
    if not Announcement.objects.filter(pk=announcement.pk, published_at__isnull=False).exists():
        raise RuntimeError("the admin action did not publish the announcement")
    result = deliveries(client, seq=seq, start=start, created=created, before=before, expected=n)
    return {**result, "response_ms": response_ms}


def one_service(client: SSELoadClient, staff: Any, seq: int, n: int) -> dict[str, Any]:
    from notifications.services import announcement_publish

    announcement, created = draft(seq, staff)
    before = client.count()["received"]
    start = time.time()
    if not announcement_publish(announcement=announcement, by=staff):
        raise RuntimeError("announcement_publish refused a draft")
    return deliveries(client, seq=seq, start=start, created=created, before=before, expected=n)


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"repeats": len(runs)}
    for path in ("admin", "service"):
        rows = [r[path] for r in runs]
        summary[path] = {
            "all_delivered": all(r["all"] for r in rows),
            **{q: round(median([r[q] for r in rows]), 1) for q in ("p50_ms", "p95_ms", "p99_ms")},
            "max_ms": round(median([r["max_ms"] for r in rows]), 1),
        }
    summary["admin"]["response_ms"] = round(median([r["admin"]["response_ms"] for r in runs]), 1)
    base = summary["service"]["p99_ms"]
    summary["p99_ratio_admin_vs_service"] = round(summary["admin"]["p99_ms"] / base, 2)
    return summary


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="1,000 clients")
    parser.add_argument("--clients", type=int, help="SSE clients (default 5,000; quick 1,000)")
    parser.add_argument("--repeat", type=int, default=3, help="announcements per path")
    parser.add_argument("--server", choices=SERVERS, default="daphne")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    count = args.clients or (1000 if args.quick else 5000)
    started = time.time()
    runs: list[dict[str, Any]] = []
    with BenchEnv() as env:
        print(f"creating {count} users with sessions and a staff user", flush=True)
        sessions = [key for _, key in env.create_users(count, prefix="user")]
        staff, staff_session = make_staff(env)
        server = env.start_server(args.server, label=f"announce-{args.server}")
        client = SSELoadClient(env)
        try:
            opened = client.connect(port=server.port, path="/events/", sessions=sessions)
            print(f"opened {opened['connected']} streams (failed {opened['failed']}) "
                  f"in {opened['seconds']} s", flush=True)  # fmt: skip
            n = opened["connected"]
            browser = AdminBrowser(server.port, staff_session)
            browser.changelist_token()  # log in once, warm the admin's first-use costs
            seq = 10**12
            for i in range(args.repeat):
                print(f"-- repeat {i + 1}", flush=True)
                admin = one_admin(browser, client, staff, seq, n)
                show("admin", admin)
                time.sleep(1)
                service = one_service(client, staff, seq + 1, n)
                show("service", service)
                runs.append({"admin": admin, "service": service})
                seq += 2
                time.sleep(1)
        finally:
            client.stop()
            env.stop_server(server)
    summary = summarize(runs)
    print(f"\n== medians of {len(runs)}, {n} clients, {args.server}")
    for path in ("admin", "service"):
        s = summary[path]
        print(
            f"{path:<8} {'all delivered' if s['all_delivered'] else 'LOSS'}: p50 {s['p50_ms']} "
            f"ms, p95 {s['p95_ms']} ms, p99 {s['p99_ms']} ms, max {s['max_ms']} ms"
        )
    print(f"p99 admin/service: {summary['p99_ratio_admin_vs_service']}; admin POST response "
          f"{summary['admin']['response_ms']} ms")  # fmt: skip
    result = {
        "benchmark": "announce",
        "server": args.server,
        "clients": count,
        "connections": opened,
        "started": started,
        "seconds": round(time.time() - started, 1),
        "summary": summary,
        "runs": runs,
    }
    print(f"results: {save('announce', result, args.json)}")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
