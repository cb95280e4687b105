"""A management command that runs once (from cron) or keeps running with --every SECONDS."""

from __future__ import annotations

import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import close_old_connections


class RepeatingCommand(BaseCommand):
    """Subclasses do one pass in `run_once`; Ctrl-C (SIGINT) ends the loop quietly."""

    every_help = "keep running and do a pass every SECONDS instead of once"

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--every", type=float, metavar="SECONDS", help=self.every_help)

    def handle(self, *args: Any, every: float | None, verbosity: int, **options: Any) -> None:
        if every is not None and every <= 0:
            raise CommandError("--every must be a positive number of seconds")
        try:
            while True:
                self.run_once(verbosity)
                if every is None:
                    return
                close_old_connections()
                time.sleep(every)
        except KeyboardInterrupt:
            return

    def run_once(self, verbosity: int) -> None:
        raise NotImplementedError
