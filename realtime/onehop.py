"""Serve chosen Django requests in one thread hop: the connects of live streams.

Django's ASGI handler gives every request a thread of its own (a new thread, so a new
database connection) and runs each sync middleware's hooks and the view in separate hops
into it: about a dozen thread switches per request. For a page that is noise; for
`/events/`, which thousands of browsers hit at once after a restart, it was most of a
connect's cost. Here the same middleware chain, built for sync code as under WSGI, and
the same view run in one call on a DatabaseThread, whose SQLite connection is kept.
Security is unchanged: it is Django's own handler, settings, middleware and URLconf.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, MutableMapping
from typing import Any

from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.core.handlers.base import BaseHandler
from django.http import HttpResponse
from django.urls import set_script_prefix

from realtime.db import DatabaseThread

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


class OneHopHandler(ASGIHandler):
    """Django for `paths` in one hop on `thread`; every other request goes to `app`."""

    def __init__(self, app: App, *, paths: Collection[str], thread: DatabaseThread) -> None:
        BaseHandler.__init__(self)  # not ASGIHandler's: that builds the async chain
        self.load_middleware(is_async=False)
        self.app = app
        self.paths = frozenset(paths)
        self._respond = thread(self._respond_sync)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] not in self.paths:
            await self.app(scope, receive, send)
            return
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        try:
            status, headers, body, streaming = await self._respond(scope, body_file)
        finally:
            body_file.close()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        if streaming:
            # What a streaming response's last message looks like under ASGIHandler: the
            # stream's wrapper (realtime.sse_asgi) keeps such a connection open.
            await send({"type": "http.response.body", "body": body, "more_body": True})
            body = b""
        await send({"type": "http.response.body", "body": body, "more_body": False})

    def _respond_sync(
        self, scope: Scope, body_file: Any
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        """Run the request through middleware and view; return what to send."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, response = self.create_request(scope, body_file)
        if request is not None:
            response = self.get_response(request)
        try:
            if response.streaming and response.is_async:
                # Only a stream handed to realtime.sse_asgi can be served from here.
                raise TypeError(f"{scope['path']} returned an async streaming response")
            body = b"".join(response) if response.streaming else response.content
            return response.status_code, self.headers(response), body, response.streaming
        finally:
            response.close()  # request_finished, in this thread, as under WSGI

    @staticmethod
    def headers(response: HttpResponse) -> list[tuple[bytes, bytes]]:
        """The response's headers and cookies, encoded as ASGIHandler.send_response does."""
        out = [(k.encode("ascii"), v.encode("latin1")) for k, v in response.items()]
        for cookie in response.cookies.values():
            out.append((b"Set-Cookie", cookie.output(header="").encode("ascii").strip()))
        return out
