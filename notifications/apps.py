from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from notifications import channels, kinds, signals
        from notifications.health import polls, register_gauge, sse_streams
        from notifications.replay import (
            AnnouncementReplay,
            NotificationReplay,
            ReadChangeReplay,
        )
        from notifications.storage import register_source

        signals.connect()
        kinds.register_builtin()
        channels.register_kinds()
        register_source("user", NotificationReplay())
        register_source("user-read", ReadChangeReplay())
        register_source("announcements", AnnouncementReplay())
        register_source("group", AnnouncementReplay())
        register_gauge("sse_streams", sse_streams)
        register_gauge("held_polls", polls)
