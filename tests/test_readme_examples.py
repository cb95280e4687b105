"""The README's "Use it from your code" examples run as written and do what they say."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from channels.testing import WebsocketCommunicator

from notifications.models import Notification
from realtime import channels
from tests.support.published import published

README = Path(__file__).resolve().parent.parent / "README.md"

pytestmark = pytest.mark.django_db(transaction=True)


def examples() -> list[str]:
    section = README.read_text().split("## Use it from your code\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, re.S)


@pytest.fixture
def kinds():
    before = dict(channels._KINDS)
    yield
    channels._KINDS.clear()
    channels._KINDS.update(before)


def run(block: str, namespace: dict[str, Any]) -> None:
    exec(compile(block, str(README), "exec"), namespace)  # the README's own code


def test_there_are_three_examples():
    assert len(examples()) == 3


@pytest.fixture
def notification_kinds(monkeypatch):
    """The README's example registers a kind: gone after the test."""
    from notifications import kinds

    monkeypatch.setattr(kinds, "_kinds", dict(kinds._kinds))


def test_notify_one_user_and_many(alice, bob, pubsub, notification_kinds):
    run(examples()[0], {})
    assert Notification.objects.get(title="Your report is ready").kind == "export.ready"
    assert Notification.objects.filter(recipient=alice, title="Your export is ready").exists()
    maintenance = Notification.objects.filter(title="Maintenance tonight at 22:00 UTC")
    assert sorted(maintenance.values_list("recipient__username", flat=True)) == ["alice", "bob"]
    sent = {(m["channel"], json.loads(m["data"])["title"]) for m in published(pubsub)}
    assert (f"user-{alice.pk}", "Your export is ready") in sent
    assert (f"user-{bob.pk}", "Maintenance tonight at 22:00 UTC") in sent


def test_a_channel_of_your_own(alice, kinds, pubsub):
    run(examples()[1], {})
    assert channels.can_read(alice, "scores-final")
    (message,) = [m for m in published(pubsub) if m["channel"] == "scores-final"]
    assert (message["event"], json.loads(message["data"])) == ("score", {"home": 2, "away": 1})


def test_a_consumer_of_your_own_on_the_channel_layer(settings):
    namespace: dict[str, Any] = {}
    run(examples()[2], namespace)  # its group_send reaches nobody yet: no one has joined
    scoreboard = namespace["Scoreboard"]

    async def watch() -> dict[str, Any]:
        communicator = WebsocketCommunicator(scoreboard.as_asgi(), "/ws/scoreboard/")
        connected, _ = await communicator.connect()
        assert connected
        layer = namespace["get_channel_layer"]()
        await layer.group_send("scoreboard", {"type": "score.changed", "home": 3, "away": 1})
        try:
            return await communicator.receive_json_from(timeout=5)
        finally:
            await communicator.disconnect()

    assert async_to_sync(watch)() == {"home": 3, "away": 1}
