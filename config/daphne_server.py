"""daphne's command line with our WebSocket factory (realtime.daphne_ws): oversized messages
are answered with close code 1009, and text frames take a short send path."""

from daphne import server  # installs Twisted's asyncio reactor first, as daphne requires
from daphne.cli import CommandLineInterface

from realtime.daphne_ws import ClosingWebSocketFactory


def main() -> None:
    server.WebSocketFactory = ClosingWebSocketFactory
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
