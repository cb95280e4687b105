"""What the shared board publishes: the only module that talks to the channel layer.

Operations go to the board's group through the standard Channels API
(`get_channel_layer().group_send`), so whatever layer settings.CHANNEL_LAYERS configures
carries them to every server process. Published after commit: a tab never applies an
operation that rolled back. A failed publish is logged; tabs fill the gap from the
operation log (demos.consumers).
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

# The consumer's handler for it is `board_op`.
OP_MESSAGE = "board.op"


def board_group(board_id: int) -> str:
    """The board's group name: ASCII, well under the layer's 100 characters."""
    return f"demo-board-{board_id}"


def op_broadcast_on_commit(*, board_id: int, op: dict[str, Any]) -> None:
    """Send the applied operation to every tab of the board once it is committed."""
    transaction.on_commit(lambda: _send(board_id, op), robust=True)


def _send(board_id: int, op: dict[str, Any]) -> None:
    layer = get_channel_layer()
    async_to_sync(layer.group_send)(board_group(board_id), {"type": OP_MESSAGE, "op": op})
