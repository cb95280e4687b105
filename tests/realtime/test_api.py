"""The public API: registering a channel kind, publishing to it, send_event() through it."""

from __future__ import annotations

import json

import django_eventstream
import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from realtime import api, channels, latest
from tests.support.published import published

pytestmark = pytest.mark.django_db


def test_a_kind_is_default_deny_and_its_rule_decides(kinds, alice, bob):
    api.register_channel("board", can_read=lambda user, key: key == f"u{user.pk}")
    assert channels.can_read(alice, f"board-u{alice.pk}")
    assert not channels.can_read(bob, f"board-u{alice.pk}")
    assert not channels.can_read(alice, "nothing-registered")
    assert not channels.can_read(alice, "board-")  # no key
    alice.is_active = False
    assert not channels.can_read(alice, f"board-u{alice.pk}")


@pytest.mark.parametrize(
    ("name", "options", "error"),
    [
        ("has-dash", {}, "no '-'"),
        ("pulse", {}, "Pulse's"),
        ("fine", {"replay": "sometimes"}, "replay must be one of"),
        ("fine", {"source": object()}, "needs replay=STORAGE"),
    ],
)
def test_a_bad_kind_is_refused_with_a_reason(kinds, name, options, error):
    with pytest.raises(ValueError, match=error):
        api.register_channel(name, can_read=lambda user, key: True, **options)


def test_publishing_to_an_unknown_channel_names_the_fix():
    with pytest.raises(ImproperlyConfigured, match="register_channel"):
        api.publish("nobody-registered-this", "x", {})


def test_a_stored_kind_needs_the_rows_id_and_others_take_none(kinds):
    api.register_channel("orders", can_read=lambda u, k: True, replay=channels.STORAGE)
    api.register_channel("live", can_read=lambda u, k: True)
    with pytest.raises(ValueError, match="pass id="):
        api.publish("orders-1", "created", {})
    with pytest.raises(ValueError, match="take no id"):
        api.publish("live-1", "tick", {}, id=4)
    with pytest.raises(ValueError, match="one-line"):
        api.publish("live-1", "two\nlines", {})
    with pytest.raises(ValueError, match="over 65536 bytes"):
        api.publish("live-1", "big", "x" * 70_000)


def test_a_publish_waits_for_the_commit_and_a_rollback_sends_nothing(
    kinds, pubsub, django_capture_on_commit_callbacks
):
    api.register_channel("live", can_read=lambda u, k: True)
    with django_capture_on_commit_callbacks(execute=True):
        api.publish("live-a", "tick", {"n": 1})
        assert published(pubsub) == []
    (message,) = published(pubsub)
    assert (message["channel"], message["event"], json.loads(message["data"])) == (
        "live-a",
        "tick",
        {"n": 1},
    )
    with (
        django_capture_on_commit_callbacks(execute=True) as callbacks,
        pytest.raises(RuntimeError),
        transaction.atomic(),
    ):
        api.publish("live-a", "tick", {"n": 2})
        raise RuntimeError("rolled back")
    assert callbacks == []
    assert published(pubsub) == []


def test_latest_values_take_growing_ids_and_the_newest_is_kept(
    kinds, pubsub, django_capture_on_commit_callbacks
):
    api.register_channel("price", can_read=lambda u, k: True, replay=channels.LATEST)
    with django_capture_on_commit_callbacks(execute=True):
        for value in (1, 2, 3):
            api.publish("price-ACME", "price", {"v": value})
    messages = published(pubsub)
    ids = [m["id"] for m in messages]
    assert ids == sorted(ids) and len(set(ids)) == 3
    assert all(m["latest"] and m["prev"] == 0 for m in messages)
    (at, event, data) = latest.read(["price-ACME"])["price-ACME"]
    assert (at, event, json.loads(data)) == (ids[-1], "price", {"v": 3})


def test_send_event_publishes_through_pulse_or_names_the_right_call(
    kinds, pubsub, alice, django_capture_on_commit_callbacks
):
    api.register_channel("live", can_read=lambda u, k: True)
    with django_capture_on_commit_callbacks(execute=True):
        django_eventstream.send_event("live-x", "hello", {"a": 1})
    (message,) = published(pubsub)
    assert (message["channel"], json.loads(message["data"])) == ("live-x", {"a": 1})
    with pytest.raises(ImproperlyConfigured, match=r"realtime\.api\.publish"):
        django_eventstream.send_event(f"user-{alice.pk}", "notification", {})
    with pytest.raises(ValueError, match="skip_user_ids"):
        django_eventstream.send_event("live-x", "hello", {}, skip_user_ids=[alice.pk])
