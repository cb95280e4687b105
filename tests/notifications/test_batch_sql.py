"""Batch statements pass ids as one parameter and still read and write what the ORM would."""

import pytest
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db.models.signals import post_init

from notifications import batch_sql, selectors
from notifications.models import Notification
from notifications.services import notification_create, notifications_send_batch
from tests.support.factories import make_users

pytestmark = pytest.mark.django_db

CONTENT = {
    "title": "T", "body": "B", "kind": "general", "level": "info", "url": "/x/", "send_key": ""
}  # fmt: skip


def as_stored(notification: Notification) -> dict:
    return {f.attname: getattr(notification, f.attname) for f in Notification._meta.fields}


def test_inserted_rows_come_back_as_a_query_returns_them(alice, bob):
    group = Group.objects.create(name="ops")
    content = {
        **CONTENT,
        "actor_id": bob.pk,
        "target_type_id": ContentType.objects.get_for_model(Group).pk,
        "target_id": str(group.pk),
    }
    rows = batch_sql.notifications_insert(recipient_ids=[bob.pk, alice.pk], content=content)
    assert [n.recipient_id for n in rows] == [bob.pk, alice.pk]  # in id order
    assert rows[0].pk < rows[1].pk
    for n in rows:
        assert as_stored(n) == as_stored(Notification.objects.get(pk=n.pk))
        assert not n._state.adding  # a later save() updates the row
    assert len({n.created_at for n in rows}) == 1
    assert (rows[0].recipient, rows[0].actor, rows[0].target) == (bob, bob, group)
    rows[0].title = "edited"
    rows[0].save()
    assert Notification.objects.get(pk=rows[0].pk).title == "edited"
    assert Notification.objects.count() == 2


def test_init_signal_receivers_see_every_row_returned(alice, bob):
    seen = []

    def receiver(sender, instance, **kwargs):
        seen.append(instance)

    post_init.connect(receiver, sender=Notification)
    try:
        rows = batch_sql.notifications_insert(recipient_ids=[alice.pk, bob.pk], content=CONTENT)
    finally:
        post_init.disconnect(receiver, sender=Notification)
    assert seen == rows
    for n in rows:
        assert as_stored(n) == as_stored(Notification.objects.get(pk=n.pk))
        assert not n._state.adding


def test_a_batch_of_thousands_is_one_insert(django_assert_num_queries):
    ids = [u.pk for u in make_users(1500, "many")]
    with django_assert_num_queries(1):
        rows = batch_sql.notifications_insert(recipient_ids=ids, content=CONTENT)
    assert sorted(n.recipient_id for n in rows) == ids
    assert Notification.objects.count() == 1500


def test_recipients_who_have_the_key_are_skipped_without_an_error(alice, bob):
    keyed = {**CONTENT, "send_key": "k"}
    batch_sql.notifications_insert(recipient_ids=[alice.pk], content=keyed)
    rows = batch_sql.notifications_insert(recipient_ids=[alice.pk, bob.pk], content=keyed)
    assert [n.recipient_id for n in rows] == [bob.pk]
    assert Notification.objects.filter(recipient=alice).count() == 1


def test_without_a_key_every_send_is_a_new_notification(alice):
    notifications_send_batch(recipient_ids=[alice.pk], title="again")
    notifications_send_batch(recipient_ids=[alice.pk], title="again")
    assert Notification.objects.filter(recipient=alice).count() == 2


def test_long_id_lists_read_what_short_ones_do():
    users = make_users(batch_sql.SHORT_LIST + 20, "reader")
    rows = [notification_create(recipient=u, title="x") for u in users]
    rows += [notification_create(recipient=u, title="y") for u in users[:5]]
    counts = selectors.unread_counts(user_ids={u.pk for u in users})
    assert counts == {u.pk: selectors.unread_count(user_id=u.pk) for u in users}
    assert sorted(set(counts.values())) == [1, 2]
    prevs = selectors.notification_previous_ids(ids=[n.pk for n in rows])
    assert prevs == {n.pk: selectors.notification_previous_ids(ids=[n.pk])[n.pk] for n in rows}
