"""Cross-site WebSocket hijacking from another port of the same host, in real Chromium."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from asgiref.sync import sync_to_async
from playwright.async_api import expect

from feeds.models import Room
from tests.support.browser import chromium, log_in

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
]

# Opens the chat socket of the page's `ws` parameter and says in the title what happened.
PROBE = """<!doctype html><title>probing</title><script>
const ws = new WebSocket(new URLSearchParams(location.search).get("ws"));
ws.onmessage = (e) => { document.title = "read: " + JSON.parse(e.data).type; };
ws.onclose = (e) => { if (!document.title.startsWith("read")) document.title = "closed"; };
</script>"""


class _Probe(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = PROBE.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def private_room(slug: str, member) -> Room:
    room = Room.objects.create(slug=slug, title=slug.title(), is_private=True)
    room.members.add(member)
    return room


@pytest.fixture
def other_port_site() -> Iterator[str]:
    """Another web server on 127.0.0.1: same site as Pulse for cookies, another origin."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Probe)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


async def test_a_page_on_another_port_cannot_open_the_victims_chat_socket(
    server, alice, other_port_site
):
    await sync_to_async(private_room)("secret", alice)
    target = f"{server.ws_url}/ws/chat/secret/"
    async with chromium() as browser:
        page = await (await browser.new_context()).new_page()
        await log_in(page, server.url, "alice")  # her session cookie is for 127.0.0.1
        # The same script from Pulse's own origin is let in: the cookie does reach the server.
        await page.goto(f"{server.url}/static/notifications/app.css")
        own = await page.evaluate(
            """(url) => new Promise((done) => {
                const ws = new WebSocket(url);
                ws.onmessage = (e) => { done(JSON.parse(e.data).type); ws.close(); };
                ws.onclose = () => done("closed");
            })""",
            target,
        )
        assert own == "welcome"
        await page.goto(f"{other_port_site}/?ws={target}")
        await expect(page).to_have_title("closed")
