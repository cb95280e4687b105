"""A short soak: hundreds of clients on two server processes, steady traffic, zero gaps.

CI runs it for SOAK_SECONDS (default 60); `python -m bench.soak --minutes 30` runs the
same test for longer.
"""

import asyncio
import os
import random

import pytest
from asgiref.sync import sync_to_async

from notifications.models import Notification
from notifications.services import notification_create
from tests.support.factories import make_users, session_cookie
from tests.support.sse_client import open_stream

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "200"))
RATE = 20  # notifications per second, to random users


async def test_hundreds_of_clients_under_steady_traffic_see_no_gap(server, second_server):
    users = await sync_to_async(make_users)(CLIENTS, "soak")
    cookies = [await sync_to_async(session_cookie)(u) for u in users]
    streams = await asyncio.gather(
        *(
            open_stream((server, second_server)[i % 2].url, session=cookie)
            for i, cookie in enumerate(cookies)
        )
    )
    rng = random.Random(42)
    create = sync_to_async(notification_create)
    sent = 0
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        while loop.time() - started < SOAK_SECONDS:
            await create(recipient=rng.choice(users), title=f"soak {sent}")
            sent += 1
            await asyncio.sleep(1 / RATE)

        expected = {
            u.pk: ids
            for u in users
            if (ids := await sync_to_async(list)(
                Notification.objects.filter(recipient=u).order_by("id").values_list("id", flat=True)
            ))
        }  # fmt: skip
        for user, stream in zip(users, streams, strict=True):
            want = expected.get(user.pk, [])
            got = [e.json()["id"] for e in await stream.collect("notification", len(want), 30)]
            assert got == want, f"{user.username}: gap or reorder"
        leftovers = await asyncio.gather(*(s.quiet(0.3) for s in streams[:20]))
        assert [e for batch in leftovers for e in batch if e.event == "notification"] == []
        print(f"soak: {CLIENTS} clients, {sent} notifications in {SOAK_SECONDS:.0f} s, 0 gaps")
    finally:
        await asyncio.gather(*(s.close() for s in streams))
