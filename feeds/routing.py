"""WebSocket routes; config.asgi wraps them in the origin check and session auth."""

from django.urls import path

from feeds.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/chat/<slug:slug>/", ChatConsumer.as_asgi()),
]
