"""The board socket through the full ASGI stack (origin check, session auth) and the Redis
channel layer, without a network."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from channels.testing import WebsocketCommunicator
from limits import RateLimitItemPerMinute

from config.asgi import application
from demos import consumers, events, protocol, services
from demos.models import Board
from realtime import redis_state, sse
from tests.support.factories import session_cookie

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
async def layer(settings):
    """A fresh Redis channel layer bound to this test's loop, emptied afterwards."""
    settings.CHANNEL_LAYERS = copy.deepcopy(settings.CHANNEL_LAYERS)
    yield get_channel_layer()
    await get_channel_layer().flush()
    await redis_state.close_async_client()


@pytest.fixture
async def board(alice) -> Board:
    return await sync_to_async(services.board_ensure)(slug="demo", title="Shared board")


async def open_board(user: Any = None, slug: str = "demo", **headers: str) -> WebsocketCommunicator:
    sent = [(b"host", b"testserver"), (b"origin", b"http://testserver")]
    if user is not None:
        cookie = await sync_to_async(session_cookie)(user)
        sent.append((b"cookie", f"sessionid={cookie}".encode()))
    return WebsocketCommunicator(application, f"/ws/demos/board/{slug}/", headers=sent)


async def synced(user: Any, since: int | None = None) -> tuple[WebsocketCommunicator, dict]:
    socket = await open_board(user)
    connected, code = await socket.connect(timeout=5)
    assert connected, f"refused with {code}"
    await socket.send_json_to({"type": "sync", "since": since})
    return socket, await socket.receive_json_from(timeout=5)


async def send(socket: WebsocketCommunicator, **frame: Any) -> dict:
    await socket.send_json_to(frame)
    return await socket.receive_json_from(timeout=5)


async def versions(socket: WebsocketCommunicator, count: int) -> list[int]:
    """The versions of the next `count` operations the socket is sent."""
    seen: list[int] = []
    while len(seen) < count:
        frame = await socket.receive_json_from(timeout=5)
        assert frame["type"] == "ops", frame
        seen += [op["version"] for op in frame["ops"]]
    return seen


create = sync_to_async(services.card_create)


# ---------------------------------------------------------------- handshake


async def test_anonymous_sockets_are_refused_before_accept(board):
    socket = await open_board()
    assert await socket.connect(timeout=5) == (False, 1000)


async def test_unknown_boards_and_inactive_users_are_refused(board, alice, bob):
    socket = await open_board(alice, slug="nowhere")
    assert (await socket.connect(timeout=5))[0] is False
    socket = await open_board(bob)  # session made while active
    bob.is_active = False
    await sync_to_async(bob.save)()
    assert (await socket.connect(timeout=5))[0] is False


# ---------------------------------------------------------------- operations


async def test_an_op_reaches_every_tab_once_and_the_sender_learns_its_version(board, alice, bob):
    a, snapshot = await synced(alice)
    b, _ = await synced(bob)
    assert (snapshot["type"], snapshot["version"]) == ("snapshot", 0)
    frame = await send(a, type="create", column="todo", text=" Plan ", client_op_id="op-1")
    assert frame == {
        "type": "ops",
        "ops": [
            {
                "version": 1,
                "op": "create",
                "card": frame["ops"][0]["card"],
                "column": "todo",
                "index": 0,
                "text": "Plan",
                "by": "alice",
                "client_op_id": "op-1",
            }
        ],
    }
    assert await b.receive_json_from(timeout=5) == frame
    # The group's copy reached alice's socket too, and was not sent twice.
    await send(b, type="move", card=frame["ops"][0]["card"], column="done", index=0)
    assert await versions(a, 1) == [2]
    assert await a.receive_nothing(timeout=0.3)
    await a.disconnect()
    await b.disconnect()


async def test_a_lost_or_late_group_message_is_filled_from_the_log_in_order(
    board, alice, monkeypatch
):
    socket, _ = await synced(alice)
    real_send = events._send
    held: list[tuple[int, dict]] = []
    # Version 1's message is late (held back), as when another process publishes it later.
    monkeypatch.setattr(events, "_send", lambda board_id, op: held.append((board_id, op)))
    await create(board_id=board.pk, author=alice, column="todo", text="one")
    monkeypatch.setattr(events, "_send", real_send)
    await create(board_id=board.pk, author=alice, column="todo", text="two")
    frame = await socket.receive_json_from(timeout=5)
    assert [op["version"] for op in frame["ops"]] == [1, 2]  # read from the log, in order
    await get_channel_layer().group_send(
        events.board_group(board.pk), {"type": events.OP_MESSAGE, "op": held[0][1]}
    )
    await create(board_id=board.pk, author=alice, column="todo", text="three")
    assert await versions(socket, 1) == [3]  # the late copy of 1 was dropped
    await socket.disconnect()


async def test_ops_before_the_first_sync_come_with_it_and_syncs_never_repeat(board, alice):
    socket = await open_board(alice)
    assert (await socket.connect(timeout=5))[0]
    await create(board_id=board.pk, author=alice, column="todo", text="early")
    assert await socket.receive_nothing(timeout=0.3)  # nothing before the client's sync
    assert (await send(socket, type="sync", since=0))["ops"][0]["text"] == "early"
    await create(board_id=board.pk, author=alice, column="todo", text="later")
    assert await versions(socket, 1) == [2]
    # A sync from an older version continues after what this socket was sent.
    assert await send(socket, type="sync", since=0) == {"type": "ops", "ops": []}
    assert (await send(socket, type="sync", since=None))["type"] == "snapshot"
    await socket.disconnect()


async def test_a_reconnecting_tab_gets_the_ops_it_missed_or_a_snapshot(board, alice):
    for i in range(5):
        await create(board_id=board.pk, author=alice, column="todo", text=f"card {i}")
    socket, frame = await synced(alice, since=3)
    assert [op["version"] for op in frame["ops"]] == [4, 5]
    await socket.disconnect()
    socket, frame = await synced(alice, since=99)  # a version this board never had
    assert (frame["type"], frame["version"]) == ("snapshot", 5)
    await socket.disconnect()


# ---------------------------------------------------------------- bad input


async def test_bad_frames_get_an_error_frame_and_the_socket_stays_usable(board, alice):
    socket, _ = await synced(alice)
    await socket.send_to(bytes_data=b"\x00")
    assert (await socket.receive_json_from(timeout=5))["code"] == protocol.BAD_JSON
    await socket.send_to(text_data="{nope")
    assert (await socket.receive_json_from(timeout=5))["code"] == protocol.BAD_JSON
    await socket.send_to(text_data="x" * (protocol.FRAME_MAX + 1))
    assert (await socket.receive_json_from(timeout=5))["code"] == protocol.TOO_LARGE
    assert (await send(socket, type="delete"))["code"] == protocol.UNKNOWN_TYPE
    refused = await send(socket, type="create", column="todo", text="  ", client_op_id="c-9")
    assert refused == {
        "type": "error",
        "code": "invalid",
        "message": "text is empty",
        "client_op_id": "c-9",
    }
    refused = await send(socket, type="move", card=404, column="done", index=0)
    assert (refused["code"], refused["message"]) == ("not_found", "card 404 is not on this board")
    ok = await send(socket, type="create", column="todo", text="still here")
    assert ok["ops"][0]["version"] == 1
    await socket.disconnect()


async def test_a_database_failure_is_an_unavailable_error_not_a_closed_socket(
    board, alice, monkeypatch
):
    socket, _ = await synced(alice)

    def broken(**kwargs: Any) -> dict:
        raise RuntimeError("database is locked")

    monkeypatch.setattr(consumers, "_create", consumers._service(broken))
    refused = await send(socket, type="create", column="todo", text="x", client_op_id="c-1")
    assert (refused["code"], refused["client_op_id"]) == (protocol.UNAVAILABLE, "c-1")
    assert (await send(socket, type="sync", since=0))["type"] == "ops"
    await socket.disconnect()


async def test_frames_over_the_rate_are_refused_and_a_flood_is_closed(board, alice, monkeypatch):
    monkeypatch.setattr(consumers, "FRAMES", RateLimitItemPerMinute(3))
    monkeypatch.setattr(consumers, "FLOOD_STRIKES", 4)
    socket, _ = await synced(alice)  # the sync is the first frame
    for text in ("a", "b"):
        assert (await send(socket, type="create", column="todo", text=text))["type"] == "ops"
    refused = await send(socket, type="create", column="todo", text="c", client_op_id="c-3")
    assert (refused["code"], refused["client_op_id"]) == (protocol.RATE_LIMITED, "c-3")
    for _ in range(2):
        assert (await send(socket, type="sync", since=0))["code"] == protocol.RATE_LIMITED
    await socket.send_json_to({"type": "sync", "since": 0})
    assert await socket.receive_output(timeout=5) == {"type": "websocket.close", "code": 4008}
    await socket.disconnect()


async def test_signing_out_closes_that_sessions_board_sockets(board, alice):
    mine, _ = await synced(alice)
    other, _ = await synced(alice)  # another session of alice's (another browser)
    session = mine.scope["headers"][-1][1].decode().split("=", 1)[1]
    await sync_to_async(sse.kick)(user_id=alice.pk, session_key=session)
    assert (await mine.receive_output(timeout=5))["code"] == 4001
    assert await other.receive_nothing(timeout=0.3)
    await sync_to_async(sse.kick)(user_id=alice.pk, session_key=None)  # a password change
    assert (await other.receive_output(timeout=5))["code"] == 4001
