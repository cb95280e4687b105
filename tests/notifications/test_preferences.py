"""Preferences: the JSON API and settings page, and muted kinds that are never created."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from feeds.models import Message, Room
from notifications import kinds, preferences, selectors
from notifications.api import notify
from notifications.models import Announcement, Notification
from notifications.services import announcement_create, announcement_publish
from tests.support.factories import make_user
from tests.support.http import csrf_post, csrf_put_json

pytestmark = pytest.mark.django_db(transaction=True)  # batches commit, then publish

URL = "/api/preferences/"


def put(client, data, *, raw: str | None = None):
    return csrf_put_json(client, URL, data, raw=raw)


def test_defaults_follow_the_kinds_channels(alice_client):
    prefs = alice_client.get(URL).json()
    general, chat, account = (prefs["categories"][c] for c in ("general", "chat", "account"))
    assert (general["in_app"], general["email"], general["mutable"]) == (True, "immediate", True)
    assert (chat["in_app"], chat["email"]) == (True, "off")
    assert {"name": "room.mention", "label": "Mentions in chat rooms"} in chat["kinds"]
    assert account["mutable"] is False
    assert (prefs["pause_email"], prefs["quiet_hours"], prefs["time_zone"]) == (False, None, "UTC")


def test_put_changes_only_the_keys_given_and_answers_the_result(alice_client):
    changed = {
        "categories": {"chat": {"in_app": False}, "general": {"email": "daily"}},
        "quiet_hours": {"start": "22:00", "end": "07:00"},
        "time_zone": "Europe/Berlin",
    }
    prefs = put(alice_client, changed).json()
    assert prefs == alice_client.get(URL).json()
    assert (prefs["categories"]["chat"]["in_app"], prefs["categories"]["chat"]["email"]) == (
        False,
        "off",
    )
    assert prefs["categories"]["general"] | {"kinds": []} == {
        "in_app": True, "email": "daily", "kinds": [], "mutable": True
    }  # fmt: skip
    assert prefs["quiet_hours"] == {"start": "22:00", "end": "07:00"}
    assert (prefs["time_zone"], prefs["pause_email"]) == ("Europe/Berlin", False)
    prefs = put(alice_client, {"pause_email": True, "quiet_hours": None}).json()
    assert (prefs["pause_email"], prefs["quiet_hours"], prefs["time_zone"]) == (
        True,
        None,
        "Europe/Berlin",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"categories": {"nope": {"in_app": False}}}, "unknown category 'nope'; categories: "),
        ({"categories": {"chat": {"in_app": "no"}}}, "categories.chat.in_app must be true or"),
        ({"categories": {"chat": {"email": "weekly"}}}, "categories.chat.email must be one of"),
        ({"categories": {"chat": {"sms": True}}}, "categories.chat must be an object with"),
        ({"categories": []}, "categories must be an object"),
        ({"volume": 11}, "unknown field 'volume'"),
        ({"pause_email": 1}, "pause_email must be true or false"),
        ({"time_zone": "Mars/Olympus"}, "time_zone must be an IANA time zone name"),
        (
            {"quiet_hours": {"start": "25:00", "end": "07:00"}},
            "quiet_hours start and end must be times",
        ),
        ({"quiet_hours": {"start": "07:00"}}, "quiet_hours must be null or"),
        (
            {"quiet_hours": {"start": "07:00", "end": "07:00"}},
            "quiet_hours start and end must differ",
        ),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_input_is_a_400_with_a_message_and_changes_nothing(alice_client, data, message):
    before = alice_client.get(URL).json()
    response = put(alice_client, {"pause_email": True, **data} if isinstance(data, dict) else data)
    assert response.status_code == 400
    assert response.json()["error"].startswith(message)
    assert alice_client.get(URL).json() == before


def test_a_body_that_is_not_json_is_a_400(alice_client):
    response = put(alice_client, None, raw="{not json")
    assert (response.status_code, response.json()) == (
        400,
        {"error": "the body must be a JSON object"},
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"in_app": False},
            "category 'account' cannot be turned off: account.security may not be muted",
        ),
        (
            {"email": "off"},
            "email for category 'account' cannot be turned off: account.security may not be muted",
        ),
    ],
)
def test_muting_a_category_with_a_non_mutable_kind_is_refused_with_the_reason(
    alice_client, change, message
):
    response = put(alice_client, {"categories": {"account": change}})
    assert (response.status_code, response.json()["error"]) == (400, message)


def test_a_digest_is_fine_for_a_non_mutable_category(alice_client):
    response = put(alice_client, {"categories": {"account": {"email": "daily"}}})
    assert response.json()["categories"]["account"]["email"] == "daily"


def test_the_api_needs_a_login_and_csrf_and_get_or_put(alice, client):
    assert client.get(URL).status_code == 403  # login_required_json
    csrf_client = type(client)(enforce_csrf_checks=True)
    csrf_client.force_login(alice)
    no_token = csrf_client.put(URL, "{}", content_type="application/json")
    assert no_token.status_code == 403
    assert csrf_post(csrf_client, URL).status_code == 405


def mute(client, category: str) -> None:
    assert put(client, {"categories": {category: {"in_app": False}}}).status_code == 200


def test_a_muted_kind_is_not_created_for_one_recipient(alice, alice_client, pubsub):
    mute(alice_client, "general")
    assert notify(alice, title="quiet") == []
    assert not Notification.objects.exists()
    (n,) = notify(alice, kind=kinds.SECURITY, title="New login")  # not mutable
    assert n.kind == kinds.SECURITY


def test_bulk_notify_leaves_out_who_muted(alice, bob, charlie, alice_client):
    mute(alice_client, "general")
    notify([alice, bob, charlie], title="hi")
    assert sorted(Notification.objects.values_list("recipient__username", flat=True)) == [
        "bob",
        "charlie",
    ]


def test_the_bulk_command_skips_who_muted_and_says_how_many_and_why(
    alice, bob, charlie, alice_client
):
    mute(alice_client, "announcements")
    out = StringIO()
    call_command("send_notifications", "--title", "x", "--all", stdout=out, stderr=StringIO())
    assert "sent 2 notifications" in out.getvalue()
    assert "skipped 1 who turned off 'announcements' notifications (announcement)" in (
        out.getvalue()
    )
    assert "already had key" not in out.getvalue()
    assert not Notification.objects.filter(recipient=alice).exists()


def test_a_muted_chat_mention_is_not_created(alice, bob, charlie, client):
    client.force_login(bob)
    assert client.put(URL, '{"categories": {"chat": {"in_app": false}}}', "application/json")
    room = Room.objects.create(slug="general", title="General")
    Message.objects.create(room=room, author=alice, content="@bob @charlie look")
    assert list(Notification.objects.values_list("recipient__username", flat=True)) == ["charlie"]


def test_the_settings_page_saves_the_form_and_shows_errors(alice_client):
    page = alice_client.get("/notifications/settings/")
    assert page.status_code == 200
    assert 'name="in_app-account"' in page.content.decode()
    form = {
        "email-general": "hourly",
        "in_app-general": "on",
        "email-chat": "off",
        "email-announcements": "off",
        "in_app-announcements": "on",
        "email-account": "immediate",
        "quiet_start": "22:00",
        "quiet_end": "06:30",
        "time_zone": "Europe/Paris",
    }
    response = csrf_post(alice_client, "/notifications/settings/", form)
    assert (response.status_code, response["Location"]) == (302, "/notifications/settings/?saved=1")
    prefs = alice_client.get(URL).json()
    assert prefs["categories"]["general"]["email"] == "hourly"
    assert prefs["categories"]["chat"]["in_app"] is False
    assert prefs["quiet_hours"] == {"start": "22:00", "end": "06:30"}
    bad = csrf_post(alice_client, "/notifications/settings/", {**form, "quiet_end": ""})
    assert bad.status_code == 400
    assert "quiet_hours start and end must be times" in bad.content.decode()


def test_the_inbox_links_to_the_settings(alice_client):
    assert 'href="/notifications/settings/"' in alice_client.get("/notifications/").content.decode()


def test_who_muted_is_one_query_for_a_whole_batch(alice_client, django_assert_num_queries):
    mute(alice_client, "general")
    alice_id = alice_client.get(URL).wsgi_request.user.pk
    ids = [alice_id, *range(10_000, 12_000)]
    with django_assert_num_queries(1):
        muted = preferences.muted_user_ids(user_ids=ids, kind=kinds.get(kinds.DEFAULT_KIND))
    assert muted == {alice_id}
    with django_assert_num_queries(0):
        assert not preferences.muted_user_ids(user_ids=ids, kind=kinds.get(kinds.SECURITY))


def test_an_announcement_is_not_shown_to_who_turned_its_category_off(
    alice, bob, alice_client, client
):
    mute(alice_client, "announcements")
    staff = make_user("staff", is_staff=True)
    news = announcement_create(title="News", publish_at=timezone.now(), created_by=staff)
    breach = announcement_create(title="Breach", kind=kinds.SECURITY)
    announcement_publish(announcement=breach)
    out = StringIO()
    call_command("publish_due_announcements", stdout=out)
    assert f"published announcement {news.pk}: News (not shown to 1 who turned off " in (
        out.getvalue()
    )
    shown = alice_client.get("/api/announcements/").json()
    assert ([a["title"] for a in shown["results"]], shown["unread"]) == (["Breach"], 1)
    client.force_login(bob)
    assert [a["title"] for a in client.get("/api/announcements/").json()["results"]] == [
        "News",
        "Breach",
    ]
    stats = selectors.announcements_with_stats(Announcement.objects.order_by("pk"))
    assert [(a.title, a.muted_count) for a in stats] == [("News", 1), ("Breach", 0)]


def test_pages_tell_their_script_which_kinds_to_drop_live(alice_client):
    mute(alice_client, "announcements")
    page = alice_client.get("/notifications/").content.decode()
    assert 'data-muted-kinds="announcement"' in page
