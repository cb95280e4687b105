"""daphne's command line with our WebSocket factory (realtime.daphne_ws): oversized messages
are answered with close code 1009, and text frames take a short send path. Plain
`daphne config.asgi:application` gets the same factory (config.asgi installs it); this
launcher installs it before the application is even imported."""

from daphne import server  # noqa: F401 - installs Twisted's asyncio reactor first
from daphne.cli import CommandLineInterface

from realtime import daphne_ws


def main() -> None:
    daphne_ws.install()
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
