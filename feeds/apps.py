from django.apps import AppConfig


class FeedsConfig(AppConfig):
    name = "feeds"

    def ready(self) -> None:
        from feeds import activity_signals, chat_signals
        from feeds.activity_replay import ActivityReplay
        from notifications.storage import register_source

        chat_signals.connect()
        activity_signals.connect()
        register_source("activity", ActivityReplay())
