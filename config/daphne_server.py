"""daphne's command line with our WebSocket factory (realtime.daphne_ws): oversized messages
are answered with close code 1009, and text frames take a short send path. Plain
`daphne config.asgi:application` gets the same factory (config.asgi installs it); this
launcher installs it before the application is even imported. It also refuses to start,
with one line on stderr and exit status 1, when the settings are malformed or the database
or Redis is unreachable (realtime.probes)."""

import os
import sys

from daphne import server  # noqa: F401 - installs Twisted's asyncio reactor first
from daphne.cli import CommandLineInterface

from realtime import daphne_ws


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup(set_prefix=False)
    except ImproperlyConfigured as exc:
        print(f"daphne: cannot start: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    from realtime import probes

    probes.exit_unless_reachable("daphne")
    daphne_ws.install()
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
