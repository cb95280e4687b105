"""How soon the server gives up on a peer that vanished without closing its connection.

A client that disappears without a FIN or RST (cable pulled, laptop lid closed, NAT entry
expired) leaves the server retransmitting unacknowledged data for ~15 minutes before Linux
fails the connection, and its stream, hub entry and memory stay until then. The server sets
`TCP_USER_TIMEOUT` on each long-lived stream (notifications/sse.py) so the kernel fails it
after USER_TIMEOUT_SECONDS of unacknowledged data, and an idle stream writes a keep-alive at
least every KEEPALIVE_SECONDS, so a vanished peer always leaves data in flight: it is dropped
within KEEPALIVE_SECONDS + USER_TIMEOUT_SECONDS (50 s by default). A healthy peer acknowledges
every write within its round trip, so an idle stream that is alive stays up indefinitely.
"""

from django.core.exceptions import ImproperlyConfigured

from config.env import env_int

USER_TIMEOUT_SECONDS = env_int("TCP_USER_TIMEOUT", 30)
if USER_TIMEOUT_SECONDS < 1:
    raise ImproperlyConfigured(f"TCP_USER_TIMEOUT must be at least 1 s, got {USER_TIMEOUT_SECONDS}")

# 20 s also keeps proxies with a 60 s read timeout from closing idle streams.
KEEPALIVE_SECONDS = min(20, USER_TIMEOUT_SECONDS)
