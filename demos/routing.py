"""WebSocket routes; config.asgi wraps them in the origin check and session auth."""

from django.urls import path

from demos.consumers import BoardConsumer

websocket_urlpatterns = [
    path("ws/demos/board/<slug:slug>/", BoardConsumer.as_asgi()),
]
