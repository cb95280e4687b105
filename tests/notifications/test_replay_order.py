"""A recipient's notifications commit in id order, so no stream position passes one by."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from notifications.models import Notification
from notifications.services import notification_create, notifications_send_batch
from notifications.storage import replay_log_lock

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PostgreSQL commits concurrent inserts in any order"
)
on_sqlite = pytest.mark.skipif(connection.vendor != "sqlite", reason="SQLite-only behaviour")


@on_sqlite
@pytest.mark.django_db
def test_the_lock_costs_nothing_on_sqlite_which_has_one_writer_at_a_time(
    alice, bob, django_assert_num_queries
):
    with transaction.atomic(), django_assert_num_queries(0):
        replay_log_lock(user_ids=[alice.pk])
        replay_log_lock(user_ids=[alice.pk, bob.pk])


def _waiting_for_advisory_lock(timeout: float = 10.0) -> bool:
    """True once some backend waits for an advisory lock (asked from a connection of its own)."""
    deadline = time.monotonic() + timeout
    with connections["default"].cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.02)
    return False


def _in_thread(target, *args) -> threading.Thread:
    def run() -> None:
        try:
            target(*args)
        finally:
            connections.close_all()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@on_postgresql
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_kind", ["one", "batch"])
def test_a_second_insert_for_a_recipient_waits_until_the_first_commits(alice, bob, first_kind):
    inserted, release, seen = threading.Event(), threading.Event(), []

    def first() -> None:
        with transaction.atomic():
            if first_kind == "one":
                notification_create(recipient=alice, title="first")
            else:
                notifications_send_batch(
                    recipient_ids=[alice.pk, bob.pk], title="first", send_key="order-1"
                )
            inserted.set()
            release.wait(10)

    def second() -> None:
        notification_create(recipient=alice, title="second")
        # Asked the moment the second insert is through: the first must have committed by then.
        # (Appending to a list after each commit raced: thread one could be descheduled between
        # its commit and its append while thread two ran to the end.)
        seen.append(Notification.objects.filter(recipient=alice, title="first").exists())

    one = _in_thread(first)
    assert inserted.wait(10)
    two = _in_thread(second)
    try:
        assert _waiting_for_advisory_lock(), "the second insert did not wait for the first"
        assert two.is_alive() and seen == [], "the second insert finished before the first"
    finally:
        release.set()
        one.join(10)
        two.join(10)
    assert seen == [True], "the second insert went through before the first committed"
    first_row = Notification.objects.get(recipient=alice, title="first")
    second_row = Notification.objects.get(recipient=alice, title="second")
    assert first_row.pk < second_row.pk


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_inserts_for_other_recipients_do_not_wait(alice, bob):
    inserted, release, done = threading.Event(), threading.Event(), threading.Event()

    def first() -> None:
        with transaction.atomic():
            notification_create(recipient=alice, title="alice's")
            inserted.set()
            release.wait(30)

    one = _in_thread(first)
    try:
        assert inserted.wait(10)
        _in_thread(lambda: (notification_create(recipient=bob, title="bob's"), done.set()))
        assert done.wait(10), "bob's insert waited for alice's transaction"
    finally:
        release.set()
        one.join(10)
