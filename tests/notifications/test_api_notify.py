"""notify(): one user or many, from a view, a shell or inside the caller's transaction."""

import json

import pytest
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.test import Client
from django.urls import path

from notifications import selectors, services
from notifications.api import notify
from notifications.models import Notification
from tests.support.factories import make_user, make_users
from tests.support.published import published

pytestmark = pytest.mark.django_db(transaction=True)  # batches commit, then publish


def send_to_everyone(request: HttpRequest) -> JsonResponse:
    sent = notify(Group.objects.get(name="all").user_set.all(), title=request.GET["title"])
    return JsonResponse({"sent": len(sent)})


urlpatterns = [path("send/", send_to_everyone)]


def notifications_published(ps) -> list[dict]:
    """The `event: notification` messages published (user creation publishes others)."""
    return [m for m in published(ps) if m.get("event") == "notification"]


def by_channel(messages: list[dict]) -> dict[str, dict]:
    return {
        m["channel"]: {**json.loads(m["data"]), "prev": m["prev"], "event_id": m["id"]}
        for m in messages
    }


@pytest.fixture
def batches(monkeypatch):
    """Batches of two, each call recorded: the batching shows on five users."""
    sizes: list[int] = []
    real = services.notifications_send_batch
    monkeypatch.setattr(services, "SEND_BATCH_SIZE", 2)

    def recording(**kwargs):
        sizes.append(len(kwargs["recipient_ids"]))
        return real(**kwargs)

    monkeypatch.setattr(services, "notifications_send_batch", recording)
    return sizes


def test_one_user_gets_one_notification_published_live(alice, pubsub):
    (n,) = notify(alice, title="Deploy finished", level="success", url="/deploys/7/")
    assert Notification.objects.get() == n
    (message,) = notifications_published(pubsub)
    assert (message["channel"], message["event"], message["id"]) == (
        f"user-{alice.pk}",
        "notification",
        n.pk,
    )
    assert json.loads(message["data"]) == {
        "id": n.pk,
        "title": "Deploy finished",
        "body": "",
        "kind": "general",
        "level": "success",
        "url": "/deploys/7/",
        "created_at": n.created_at.isoformat(),
        "unread": 1,
        "unseen": 1,
    }


def test_a_user_id_and_a_list_of_one_take_the_single_path(alice, batches):
    notify(alice.pk, title="by id")
    notify([alice], title="in a list")
    assert batches == []
    assert sorted(Notification.objects.values_list("title", flat=True)) == ["by id", "in a list"]


def test_many_users_are_sent_in_batches_each_published_with_count_and_prev(pubsub, batches):
    users = make_users(5, "many")
    earlier = notify(users[0], title="earlier")[0]
    sent = notify(users, title="All hands", body="at 10")
    assert batches == [2, 2, 1]
    assert [n.recipient_id for n in sent] == [u.pk for u in users]
    assert [n.pk for n in sent] == sorted(n.pk for n in sent)
    events = by_channel(notifications_published(pubsub)[1:])
    assert set(events) == {f"user-{u.pk}" for u in users}
    for n in sent:
        event = events[f"user-{n.recipient_id}"]
        assert event["event_id"] == event["id"] == n.pk
        assert (event["title"], event["body"]) == ("All hands", "at 10")
        assert event["created_at"] == Notification.objects.get(pk=n.pk).created_at.isoformat()
    first = events[f"user-{users[0].pk}"]
    assert (first["unread"], first["prev"]) == (2, earlier.pk)
    assert {(e["unread"], e["prev"]) for e in events.values() if e is not first} == {(1, 0)}


@pytest.mark.parametrize(
    "kind", ["users", "ids", "queryset", "values_list", "generator", "mixed_with_repeats"]
)
def test_recipients_may_be_users_ids_querysets_or_any_iterable(alice, bob, charlie, kind):
    from django.contrib.auth import get_user_model

    qs = get_user_model().objects.filter(username__in=["alice", "bob", "charlie"])
    recipients = {
        "users": [alice, bob, charlie],
        "ids": [alice.pk, bob.pk, charlie.pk],
        "queryset": qs,
        "values_list": qs.values_list("pk", flat=True),
        "generator": (u.pk for u in (alice, bob, charlie)),
        "mixed_with_repeats": [alice, bob.pk, charlie, alice.pk, bob],
    }[kind]
    sent = notify(recipients, title="Hi")
    assert sorted(n.recipient_id for n in sent) == sorted([alice.pk, bob.pk, charlie.pk])
    assert Notification.objects.count() == 3  # a user listed twice gets one


def test_actor_and_target_are_stored_for_many_as_for_one(alice, bob, charlie):
    ops = Group.objects.create(name="ops")
    one = notify(alice, title="one", actor=charlie, target=ops)
    many = notify([alice, bob], title="many", actor=charlie, target=ops)
    for n in [*one, *many]:
        row = Notification.objects.get(pk=n.pk)
        assert (row.actor, row.target) == (charlie, ops)


def test_nothing_is_published_before_the_callers_transaction_commits(pubsub, batches):
    users = make_users(3, "caller")
    with transaction.atomic():
        notify(users, title="Together")
        notify(users[0], title="Alone")
        assert notifications_published(pubsub) == []
    assert len(notifications_published(pubsub)) == 4


def test_a_rolled_back_caller_leaves_no_rows_and_publishes_nothing(pubsub, batches):
    users = make_users(3, "rollback")
    with pytest.raises(RuntimeError), transaction.atomic():
        notify(users, title="Never")
        raise RuntimeError("the caller failed")
    assert not Notification.objects.exists()
    assert notifications_published(pubsub) == []


def test_a_view_sends_to_a_queryset(pubsub, settings):
    settings.ROOT_URLCONF = __name__
    group = Group.objects.create(name="all")
    group.user_set.add(*make_users(3, "viewer"))
    response = Client().get("/send/", {"title": "From a view"})
    assert response.json() == {"sent": 3}
    assert len(notifications_published(pubsub)) == 3


def test_no_recipients_send_nothing(pubsub):
    assert notify([], title="Nobody") == []
    assert notify(Group.objects.none(), title="Nobody") == []
    assert notifications_published(pubsub) == []


@pytest.mark.parametrize(
    ("recipients", "kwargs", "message"),
    [
        ("alice", {"title": ""}, "title must not be empty"),
        ("alice", {"title": "  "}, "title must not be empty"),
        ("both", {"title": "x" * 201}, "title is longer than 200 characters"),
        ("both", {"title": "ok", "body": "b" * 5001}, "body is longer than 5000"),
        ("both", {"title": "ok", "level": "panic"}, "level must be one of info, success"),
        ("both", {"title": "ok", "url": "javascript:alert(1)"}, "url must be a path"),
        ("both", {"title": "ok", "url": "/" + "x" * 500}, "url is longer than 500"),
        ("both", {"title": "ok", "actor": "alice"}, "actor must be a saved user"),
        ("both", {"title": "ok", "target": Group(name="unsaved")}, "target must be a saved"),
        ("unknown_id", {"title": "ok"}, r"^\['unknown user id: 999999'\]$"),
        ("unknown_ids", {"title": "ok"}, r"^\['7 unknown user ids: 999990, 999991, .* 2 more'\]$"),
        ("username", {"title": "ok"}, "recipients must be users or user ids, not a string"),
        ("group", {"title": "ok"}, "recipients must be saved users or user ids, not Group"),
        ("unsaved", {"title": "ok"}, "recipients must be saved users or user ids, not User"),
        ("flag", {"title": "ok"}, "recipients must be saved users or user ids, not bool"),
    ],
)
def test_bad_input_is_refused_with_a_clear_message_and_nothing_sent(
    alice, bob, pubsub, recipients, kwargs, message
):
    from django.contrib.auth import get_user_model

    recipients = {
        "alice": alice,
        "both": [alice, bob],
        "unknown_id": 999999,
        "unknown_ids": [alice.pk, *range(999990, 999997)],
        "username": "alice",
        "group": [alice, Group.objects.create(name="g")],
        "unsaved": [alice, get_user_model()(username="ghost")],
        "flag": [alice, True],
    }[recipients]
    with pytest.raises(ValidationError, match=message):
        notify(recipients, **kwargs)
    assert not Notification.objects.exists()
    assert notifications_published(pubsub) == []


def test_thousands_of_known_ids_are_checked_in_one_query(django_assert_num_queries):
    ids = [u.pk for u in make_users(1500, "known")]
    with django_assert_num_queries(1):
        assert selectors.unknown_user_ids(ids=ids) == []
    assert selectors.unknown_user_ids(ids=[10**9, *ids, 10**9 + 1]) == [10**9, 10**9 + 1]


def test_from_a_shell_the_notifications_are_committed_and_live_when_it_returns(pubsub):
    users = [make_user(f"shell{i}") for i in range(3)]
    sent = notify(users, title="From the shell")
    assert len(notifications_published(pubsub)) == 3
    assert Notification.objects.filter(pk__in=[n.pk for n in sent]).count() == 3
