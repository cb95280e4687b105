"""WebSocket routes (chat rooms arrive with the chat issue)."""

websocket_urlpatterns: list = []
