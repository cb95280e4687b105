"""A tiny HTTP proxy in front of a test server that breaks what real proxies break:
`refuse_upgrade` answers WebSocket handshakes with 403 (a proxy that does not do
`Upgrade`); `buffer` holds each response until it is complete (a proxy that buffers:
an SSE stream never arrives, a long poll arrives when it ends).

Written on asyncio streams rather than taken from a library: the few proxies on PyPI
(proxy.py, mitmproxy) are far larger than this and none buffers responses on request.
"""

from __future__ import annotations

import asyncio
import contextlib

REFUSED = b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
HEAD_MAX = 64 * 1024


class Proxy:
    def __init__(self, upstream_port: int, *, refuse_upgrade: bool = False, buffer: bool = False):
        self.upstream_port = upstream_port
        self.refuse_upgrade = refuse_upgrade
        self.buffer = buffer
        self.refused_upgrades = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Proxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0, limit=HEAD_MAX)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                name.strip().lower(): value.strip()
                for name, _, value in (line.partition(":") for line in lines[1:] if line)
            }
            if self.refuse_upgrade and headers.get("upgrade", "").lower() == "websocket":
                self.refused_upgrades += 1
                writer.write(REFUSED)
                await writer.drain()
                return
            up_reader, upstream = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            if self.buffer:
                await self._buffered(reader, writer, lines, headers, up_reader, upstream)
            else:
                upstream.write(head)
                await asyncio.gather(_pipe(reader, upstream), _pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()

    async def _buffered(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        lines: list[str],
        headers: dict[str, str],
        up_reader: asyncio.StreamReader,
        upstream: asyncio.StreamWriter,
    ) -> None:
        """One request per connection, its whole response held until the server ends it
        (or the client leaves)."""
        body = await reader.readexactly(int(headers.get("content-length") or 0))
        kept = [
            line
            for line in lines
            if line and not line.lower().startswith(("connection:", "keep-alive:"))
        ]
        upstream.write(("\r\n".join([*kept, "Connection: close"]) + "\r\n\r\n").encode("latin-1"))
        upstream.write(body)
        response = asyncio.ensure_future(up_reader.read())
        client_left = asyncio.ensure_future(reader.read(1))
        try:
            await asyncio.wait({response, client_left}, return_when=asyncio.FIRST_COMPLETED)
            if response.done():
                writer.write(response.result())
                await writer.drain()
        finally:
            for task in (response, client_left):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            sink.write_eof()
