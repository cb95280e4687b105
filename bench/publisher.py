"""The benchmark publisher: numbered events at a fixed rate, the send time in each payload.

`python -m bench.publisher ours|stock|notify`, driven over JSON lines like the load client:
- ours:   realtime.sse.publish_events() on a public channel (what services publish through);
- stock:  django_eventstream.send_event() as a tutorial calls it (stock server settings);
- notify: notifications.services.notification_create() for a rotating set of users,
          so the time runs from the INSERT through commit, Redis and the server to the client.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any


def _payload(seq: int, pad: int) -> dict[str, Any]:
    # seq and t first, in this order: the load client reads them with one regex.
    return {"seq": seq, "t": time.time(), "pad": "x" * pad}


def make_sender(mode: str):
    import django

    django.setup()
    if mode == "ours":
        from realtime import sse

        def send_ours(seq: int, step: dict[str, Any]) -> None:
            data = json.dumps(_payload(seq, step.get("pad", 150)))
            sse.publish_events([(step.get("channel", "announcements"), "message", data, seq)])

        return send_ours
    if mode == "stock":
        from django_eventstream import send_event

        def send_stock(seq: int, step: dict[str, Any]) -> None:
            send_event(step.get("channel", "announcements"), "message", _payload(seq, 150))

        return send_stock
    if mode == "notify":
        from django.contrib.auth.models import User

        from notifications.services import notification_create

        users: dict[int, Any] = {}

        def send_notification(seq: int, step: dict[str, Any]) -> None:
            ids = step["user_ids"]
            user_id = ids[seq % len(ids)]
            if user_id not in users:
                users[user_id] = User.objects.get(pk=user_id)
            notification_create(recipient=users[user_id], title=f"seq={seq} t={time.time():.6f}")

        return send_notification
    raise SystemExit(f"unknown mode {mode!r}")


def publish(send, step: dict[str, Any]) -> dict[str, Any]:
    """Send step["count"] events numbered from step["first"] at step["rate"] per second."""
    rate, count, first = float(step["rate"]), int(step["count"]), int(step["first"])
    start = time.monotonic()
    late = 0.0
    for i in range(count):
        due = start + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        send(first + i, step)
    return {"sent": count, "seconds": round(time.monotonic() - start, 3), "late_s": round(late, 3)}


def main() -> None:
    mode = sys.argv[1]
    send = make_sender(mode)
    for line in sys.stdin:
        command = json.loads(line)
        cmd = command.pop("cmd")
        if cmd == "quit":
            reply: dict[str, Any] = {"bye": True}
        elif cmd == "ping":
            reply = {"mode": mode}
        elif cmd == "publish":
            reply = publish(send, command)
        else:
            reply = {"error": f"unknown command {cmd}"}
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()
        if cmd == "quit":
            break


if __name__ == "__main__":
    main()
