from django.apps import AppConfig
from django.conf import settings


class RealtimeConfig(AppConfig):
    name = "realtime"
    verbose_name = "Pulse delivery core"

    def ready(self) -> None:
        if getattr(settings, "PULSE_SEND_EVENT_BRIDGE", True):
            from realtime import eventstream_bridge

            eventstream_bridge.install()
