from django.apps import AppConfig


class FeedsConfig(AppConfig):
    name = "feeds"

    def ready(self) -> None:
        from feeds import activity_signals, chat_channel, chat_signals, live
        from feeds.activity_replay import ActivityReplay
        from feeds.membership import INVITE_KIND
        from feeds.services import MENTION_KIND
        from notifications.api import register_kind
        from notifications.health import register_gauge
        from notifications.storage import register_source

        chat_signals.connect()
        activity_signals.connect()
        register_source("activity", ActivityReplay())
        chat_channel.register()
        register_kind(MENTION_KIND, category="chat", label="Mentions in chat rooms")
        register_kind(INVITE_KIND, category="chat", label="Added to a private room")
        register_gauge("chat_sockets", live.local_sockets)
        register_gauge("chat_channels", live.subscribed_channels)
