"""Ending a session ends its live streams on every server process."""

import httpx
import pytest
from asgiref.sync import sync_to_async

from tests.support.factories import PASSWORD, session_cookie
from tests.support.sse_client import ended, open_stream

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


async def browser_login(base_url: str, username: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base_url, follow_redirects=False)
    await client.get("/login/")
    response = await client.post(
        "/login/",
        data={
            "username": username,
            "password": PASSWORD,
            "csrfmiddlewaretoken": client.cookies["csrftoken"],
        },
        headers={"Referer": f"{base_url}/login/"},
    )
    assert response.status_code == 302, response.text
    return client


async def test_logout_closes_that_sessions_streams_on_every_process(server, second_server, alice):
    web = await browser_login(server.url, "alice")
    cookie = web.cookies["sessionid"]
    other_device = await sync_to_async(session_cookie)(alice)
    on_first = await open_stream(server.url, session=cookie)
    on_second = await open_stream(second_server.url, session=cookie)
    other = await open_stream(second_server.url, session=other_device)
    try:
        response = await web.post(
            "/logout/",
            headers={"X-CSRFToken": web.cookies["csrftoken"], "Referer": f"{server.url}/"},
        )
        assert response.status_code == 302
        assert await ended(on_first) == "session-ended"
        assert await ended(on_second) == "session-ended"
        # the same user's other session is not logged out and keeps streaming
        assert [e.event for e in await other.quiet(0.5)] == []
        async with httpx.AsyncClient(
            base_url=second_server.url, cookies={"sessionid": cookie}
        ) as c:
            refused = await c.get("/events/")
        assert refused.status_code == 403
    finally:
        for stream in (on_first, on_second, other):
            await stream.close()
        await web.aclose()


async def test_deactivation_and_password_change_close_all_the_users_streams(
    server, second_server, alice, bob
):
    alice_cookie = await sync_to_async(session_cookie)(alice)
    bob_cookie = await sync_to_async(session_cookie)(bob)
    alice_stream = await open_stream(server.url, session=alice_cookie)
    bob_stream = await open_stream(second_server.url, session=bob_cookie)
    try:
        alice.set_password("a-brand-new-password-42")
        await sync_to_async(alice.save)()
        assert await ended(alice_stream) == "session-ended"

        bob.is_active = False
        await sync_to_async(bob.save)()
        assert await ended(bob_stream) == "session-ended"

        for cookie in (alice_cookie, bob_cookie):
            async with httpx.AsyncClient(base_url=server.url, cookies={"sessionid": cookie}) as c:
                refused = await c.get("/events/")
            assert refused.status_code == 403
    finally:
        await alice_stream.close()
        await bob_stream.close()
