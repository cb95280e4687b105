from django.apps import AppConfig


class FeedsConfig(AppConfig):
    name = "feeds"

    def ready(self) -> None:
        from feeds import activity_signals, chat_signals

        chat_signals.connect()
        activity_signals.connect()
