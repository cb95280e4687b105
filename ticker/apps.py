from django.apps import AppConfig


class TickerConfig(AppConfig):
    name = "ticker"

    def ready(self) -> None:
        from realtime.api import LATEST, register_channel
        from ticker.channels import KIND, SYMBOL_PATTERN, can_read

        # LATEST: a price is worth only its newest value. A tab that opens or comes back
        # gets it at once, and a slow one skips stale prices instead of queueing them.
        register_channel(KIND, can_read=can_read, replay=LATEST, key=SYMBOL_PATTERN)
