"""ASGI entry point: Django for HTTP (pages, API, SSE), Channels for WebSockets."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_http = get_asgi_application()

# Imported after the app registry is ready.
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

from feeds.routing import websocket_urlpatterns  # noqa: E402
from notifications.sse import SSEStreams  # noqa: E402
from realtime.auth import SessionAuthMiddleware  # noqa: E402
from realtime.db import connect_database  # noqa: E402
from realtime.onehop import OneHopHandler  # noqa: E402

# Paths that thousands of clients hit at once after a restart: one thread hop each.
LIVE_CONNECT_PATHS = ("/events/",)

application = ProtocolTypeRouter(
    {
        # SSEStreams: /events/ streams continue on the ASGI connection once the view has
        # authorized them (notifications/sse.py); every other request passes through.
        "http": SSEStreams(
            OneHopHandler(
                ASGIStaticFilesHandler(django_http),
                paths=LIVE_CONNECT_PATHS,
                thread=connect_database,
            )
        ),
        "websocket": AllowedHostsOriginValidator(
            SessionAuthMiddleware(URLRouter(websocket_urlpatterns))
        ),
    }
)
