"""ASGI entry point: Django for HTTP (pages, API, SSE), Channels for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_http = get_asgi_application()

# Imported after the app registry is ready.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402
from django.urls import re_path  # noqa: E402

from config.origin import SameOriginWebSocket  # noqa: E402
from demos.routing import websocket_urlpatterns as demo_websocket_urlpatterns  # noqa: E402
from feeds.routing import websocket_urlpatterns  # noqa: E402
from realtime import drain  # noqa: E402
from realtime.auth import SessionAuthMiddleware  # noqa: E402
from realtime.daphne_ws import install_if_daphne_cli  # noqa: E402
from realtime.db import connect_database  # noqa: E402
from realtime.onehop import OneHopHandler  # noqa: E402
from realtime.ops import OpsEndpoints  # noqa: E402
from realtime.routing import websocket_urlpatterns as realtime_websocket_urlpatterns  # noqa: E402
from realtime.sse_asgi import SSEStreams  # noqa: E402

# `daphne config.asgi:application` imports this module before it builds its Server: give
# it the fast WebSocket factory that `manage.py serve` uses, and a SIGTERM that moves
# clients off before exiting (realtime/drain.py). No-op under other servers.
if install_if_daphne_cli():
    drain.install_for_daphne()

# Paths that thousands of clients hit at once after a restart: one thread hop each.
LIVE_CONNECT_PATHS = ("/events/",)

# Any other path is refused before accept (daphne answers 403): URLRouter would raise,
# and each such handshake would be a 500 with a traceback in the log.
websocket_routes = [
    *websocket_urlpatterns,
    *realtime_websocket_urlpatterns,
    *demo_websocket_urlpatterns,
    re_path(r"", WebsocketDenier.as_asgi()),
]

application = ProtocolTypeRouter(
    {
        # OpsEndpoints: /healthz, /readyz and token-bearing /metrics scrapes, before Django
        # (realtime/ops.py). SSEStreams: /events/ streams continue on the ASGI connection
        # once the view has authorized them (realtime/sse_asgi.py); the rest pass through.
        "http": OpsEndpoints(
            SSEStreams(
                OneHopHandler(
                    ASGIStaticFilesHandler(django_http),
                    paths=LIVE_CONNECT_PATHS,
                    thread=connect_database,
                )
            )
        ),
        # Exact origin (scheme, host and port), not just the hostname: config/origin.py.
        "websocket": SameOriginWebSocket(SessionAuthMiddleware(URLRouter(websocket_routes))),
    }
)
