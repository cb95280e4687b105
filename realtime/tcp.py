"""How soon the server gives up on a peer that vanished without closing its connection.

A client that disappears without a FIN or RST (cable pulled, laptop lid closed, NAT entry
expired) leaves the server retransmitting unacknowledged data for ~15 minutes before Linux
fails the connection, and its stream, hub entry and memory stay until then. The server sets
`TCP_USER_TIMEOUT` on each long-lived stream (realtime/sse_asgi.py) so the kernel fails it
after USER_TIMEOUT_SECONDS of unacknowledged data, and an idle stream writes a keep-alive at
least every KEEPALIVE_SECONDS, so a vanished peer always leaves data in flight: it is dropped
within KEEPALIVE_SECONDS + USER_TIMEOUT_SECONDS (50 s by default). A healthy peer acknowledges
every write within its round trip, so an idle stream that is alive stays up indefinitely.
"""

import contextlib
import socket
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from config.env import env_int

USER_TIMEOUT_SECONDS = env_int("TCP_USER_TIMEOUT", 30)
if USER_TIMEOUT_SECONDS < 1:
    raise ImproperlyConfigured(f"TCP_USER_TIMEOUT must be at least 1 s, got {USER_TIMEOUT_SECONDS}")

# 20 s also keeps proxies with a 60 s read timeout from closing idle streams.
KEEPALIVE_SECONDS = min(20, USER_TIMEOUT_SECONDS)


def time_out_vanished_peer(sock: Any) -> None:
    """Have the kernel fail `sock` once data it sent stays unacknowledged for
    USER_TIMEOUT_SECONDS. Linux only; a unix socket refuses it, and its peer cannot vanish.

    Set per connection, where the app reaches the socket through the ASGI server's `send`,
    so it holds on daphne and uvicorn however they are started. Accepted sockets do inherit
    the option from the listening one, but neither command line can set it there: daphne's
    `--fd` wants a socket that already listens (clients would queue before the app is up)
    and uvicorn's `--fd` takes the socket for a unix one.
    """
    option = getattr(socket, "TCP_USER_TIMEOUT", None)
    if sock is not None and option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, USER_TIMEOUT_SECONDS * 1000)
