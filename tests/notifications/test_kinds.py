"""Notification kinds: registered once, carried by every notification, unknown ones refused."""

import json
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client

from notifications import kinds, services
from notifications.api import UnknownKind, notify, register_kind
from notifications.models import Announcement, Notification
from tests.support.factories import make_user
from tests.support.published import published

pytestmark = pytest.mark.django_db(transaction=True)  # batches commit, then publish


@pytest.fixture
def registry(monkeypatch):
    """Kinds registered by a test are gone after it."""
    monkeypatch.setattr(kinds, "_kinds", dict(kinds._kinds))


def test_site_code_registers_a_kind_and_notifies_with_its_default_level(registry, alice):
    register_kind("comment.reply", category="comments", level="success", label="Replies")
    (n,) = notify(alice, kind="comment.reply", title="bob replied")
    assert (n.kind, n.level) == ("comment.reply", "success")
    assert kinds.categories()["comments"] == [kinds.get("comment.reply")]


def test_a_level_given_overrides_the_kinds_default(alice):
    (n,) = notify(alice, kind=kinds.SECURITY, title="New login", level="error")
    assert (n.kind, n.level) == (kinds.SECURITY, "error")


def test_no_kind_given_is_the_default_kind(alice):
    (n,) = notify(alice, title="Hello")
    assert Notification.objects.get(pk=n.pk).kind == kinds.DEFAULT_KIND == "general"
    assert kinds.EMAIL in kinds.get(kinds.DEFAULT_KIND).channels


def test_bulk_notify_writes_the_kind_on_every_row(alice, bob, charlie):
    notify([alice, bob, charlie], kind="room.mention", title="Hi")
    assert set(Notification.objects.values_list("kind", flat=True)) == {"room.mention"}


@pytest.mark.parametrize("recipients", ["one", "many"])
def test_an_unknown_kind_is_refused_before_anything_is_written(alice, bob, recipients):
    users = alice if recipients == "one" else [alice, bob]
    with pytest.raises(UnknownKind, match=r"unknown notification kind 'comment\.typo'; regist"):
        notify(users, kind="comment.typo", title="Hi")
    assert not Notification.objects.exists()


def test_unknown_kind_is_a_validation_error_for_callers_that_catch_those(alice):
    with pytest.raises(ValidationError):
        services.notification_create(recipient=alice, title="x", kind="nope")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("Bad Name", {"category": "x"}, "lowercase words"),
        ("ok", {"category": "Bad"}, "category 'Bad'"),
        ("ok", {"category": "x", "level": "loud"}, "level must be one of"),
        ("ok", {"category": "x", "channels": ("sms",)}, "channels must be among"),
        ("general", {"category": "other"}, "already registered otherwise"),
    ],
)
def test_bad_registrations_fail_loudly_at_startup(registry, name, options, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        register_kind(name, **options)


def test_registering_the_same_kind_twice_is_harmless(registry):
    assert register_kind("x.y", category="x") == register_kind("x.y", category="x")


def test_the_live_event_and_the_api_carry_the_kind(alice, alice_client, pubsub):
    notify(alice, kind=kinds.SECURITY, title="New login")
    (message,) = [m for m in published(pubsub) if m.get("event") == "notification"]
    assert json.loads(message["data"])["kind"] == kinds.SECURITY
    (item,) = alice_client.get("/api/notifications/").json()["results"]
    assert (item["kind"], item["level"]) == (kinds.SECURITY, "warning")


def test_the_api_filters_by_kind_and_refuses_an_unknown_one(alice, alice_client):
    notify(alice, title="plain")
    notify(alice, kind=kinds.SECURITY, title="login")
    body = alice_client.get(f"/api/notifications/?kind={kinds.SECURITY}").json()
    assert [r["title"] for r in body["results"]] == ["login"]
    response = alice_client.get("/api/notifications/?kind=nope")
    assert response.status_code == 400
    assert response.json()["error"].startswith("unknown notification kind 'nope'")


def send(*args: str) -> str:
    out = StringIO()
    call_command("send_notifications", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_bulk_command_sends_announcements_by_default_and_takes_a_kind(alice, bob):
    send("--title", "Maintenance", "--users", "alice")
    send("--title", "Login", "--users", "bob", "--kind", kinds.SECURITY)
    assert dict(Notification.objects.values_list("recipient__username", "kind")) == {
        "alice": kinds.ANNOUNCEMENT,
        "bob": kinds.SECURITY,
    }
    assert Notification.objects.get(recipient=bob).level == "warning"


def test_the_bulk_command_refuses_an_unknown_kind_with_its_message(alice):
    with pytest.raises(CommandError, match="unknown notification kind 'nope'"):
        send("--title", "x", "--all", "--kind", "nope")
    assert not Notification.objects.exists()


def test_announcements_take_a_kind_and_refuse_unknown_ones():
    a = services.announcement_create(title="Release")
    assert (a.kind, a.level) == (kinds.ANNOUNCEMENT, "info")
    b = services.announcement_create(title="Breach", kind=kinds.SECURITY)
    assert (b.kind, b.level) == (kinds.SECURITY, "warning")
    with pytest.raises(UnknownKind):
        services.announcement_create(title="x", kind="nope")
    assert Announcement.objects.count() == 2


def test_the_admin_offers_the_registered_kinds_and_refuses_others(alice):
    admin = Client()
    admin.force_login(make_user("root", is_staff=True, is_superuser=True))
    page = admin.get("/admin/notifications/notification/add/").content.decode()
    assert '<option value="account.security">' in page
    form = {"recipient": alice.pk, "title": "x", "level": "info", "url": ""}
    refused = admin.post("/admin/notifications/notification/add/", {**form, "kind": "nope"})
    assert "Select a valid choice" in refused.content.decode()
    admin.post("/admin/notifications/notification/add/", {**form, "kind": kinds.SECURITY})
    assert Notification.objects.get().kind == kinds.SECURITY
