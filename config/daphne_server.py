"""daphne's command line, answering an oversized WebSocket message with close code 1009.

Stock daphne leaves autobahn's `failByDrop` on, so a message over
`--websocket-max-message-size` makes it drop the TCP connection without a close frame
(clients see 1006). With it off, autobahn sends the 1009 close the protocol asks for;
either way the message never reaches the application.
"""

from daphne import server  # installs Twisted's asyncio reactor first, as daphne requires
from daphne.cli import CommandLineInterface
from daphne.ws_protocol import WebSocketFactory


class ClosingWebSocketFactory(WebSocketFactory):
    def setProtocolOptions(self, *args, **kwargs) -> None:
        kwargs.setdefault("failByDrop", False)
        super().setProtocolOptions(*args, **kwargs)


def main() -> None:
    server.WebSocketFactory = ClosingWebSocketFactory
    CommandLineInterface.entrypoint()


if __name__ == "__main__":
    main()
