"""The Announcement admin: who may publish, what every publish records, the columns staff see."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.utils import timezone

from notifications.models import Announcement
from notifications.services import announcement_create, announcement_mark_read, announcement_publish
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/notifications/announcement/"
EDIT_PERMS = ("view_announcement", "change_announcement", "add_announcement")


def staff(username: str, *codenames: str):
    user = make_user(username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def publisher(db):
    return staff("publisher", *EDIT_PERMS, "publish_announcement")


@pytest.fixture
def editor(db):
    """Staff who may write announcements but not publish them."""
    return staff("editor", *EDIT_PERMS)


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def run_action(client: Client, action: str, *announcements: Announcement):
    return client.post(
        CHANGELIST,
        {"action": action, "_selected_action": [a.pk for a in announcements]},
        follow=True,
    )


def test_a_publisher_publishes_with_the_action_and_the_publish_is_recorded(publisher):
    draft = announcement_create(title="Release 2.0", created_by=publisher)
    response = run_action(client_for(publisher), "publish_now", draft)
    assert "“Release 2.0” published." in response.content.decode()
    draft.refresh_from_db()
    assert draft.published_by == publisher
    assert draft.published_at is not None
    entry = LogEntry.objects.get(object_id=str(draft.pk))
    assert (entry.user, entry.get_change_message()) == (publisher, "Published.")


def test_publishing_twice_from_the_admin_says_so_and_changes_nothing(publisher, editor):
    a = announcement_create(title="Once")
    announcement_publish(announcement=a, by=editor)
    response = run_action(client_for(publisher), "publish_now", a)
    assert "“Once” was already published." in response.content.decode()
    a.refresh_from_db()
    assert a.published_by == editor


def test_staff_without_the_permission_are_not_offered_the_action_and_cannot_force_it(editor):
    client = client_for(editor)
    a = announcement_create(title="Not yours to send")
    page = client.get(CHANGELIST).content.decode()
    assert 'value="publish_now"' not in page
    run_action(client, "publish_now", a)
    response = client.post(f"{CHANGELIST}{a.pk}/publish/")
    assert response.status_code == 403
    a.refresh_from_db()
    assert not a.is_published


def test_a_non_staff_user_gets_403_and_nothing_is_published(bob):
    a = announcement_create(title="Nope")
    response = client_for(bob).post(f"{CHANGELIST}{a.pk}/publish/")
    assert response.status_code == 403
    a.refresh_from_db()
    assert not a.is_published


def test_anonymous_visitors_are_sent_to_the_admin_login():
    a = announcement_create(title="Nope")
    response = Client().post(f"{CHANGELIST}{a.pk}/publish/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_the_publish_button_publishes_one_announcement(publisher):
    client = client_for(publisher)
    a = announcement_create(title="From the form")
    page = client.get(f"{CHANGELIST}{a.pk}/change/").content.decode()
    assert f'action="{CHANGELIST}{a.pk}/publish/"' in page
    response = client.post(f"{CHANGELIST}{a.pk}/publish/")
    assert response.status_code == 302
    a.refresh_from_db()
    assert a.published_by == publisher


def test_the_list_shows_audience_size_and_read_count(publisher, alice, bob, charlie):
    ops = Group.objects.create(name="ops")
    bob.groups.add(ops)
    charlie.groups.add(ops)
    make_user("gone", is_active=False).groups.add(ops)
    everyone = announcement_create(title="everyone")
    to_ops = announcement_create(title="ops", groups=[ops])
    for a in (everyone, to_ops):
        announcement_publish(announcement=a, by=publisher)
    announcement_mark_read(user=alice, announcement_id=everyone.pk)
    announcement_mark_read(user=bob, announcement_id=everyone.pk)
    announcement_mark_read(user=bob, announcement_id=to_ops.pk)
    response = client_for(publisher).get(CHANGELIST)
    rows = {a.title: (a.audience_size, a.read_count) for a in response.context["cl"].result_list}
    assert rows == {"everyone": (4, 2), "ops": (2, 1)}  # alice, bob, charlie, publisher
    page = response.content.decode()
    assert "audience size" in page.lower()
    assert "read by" in page.lower()


def test_only_publishers_can_schedule(publisher, editor):
    form = {
        "title": "Planned",
        "body": "",
        "kind": "announcement",
        "level": "info",
        "audience": "everyone",
        "publish_at_0": (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%d"),
        "publish_at_1": "10:00:00",
        "expires_at_0": "",
        "expires_at_1": "",
    }
    client_for(editor).post(f"{CHANGELIST}add/", form)
    client_for(publisher).post(f"{CHANGELIST}add/", {**form, "title": "Planned by publisher"})
    by_title = {a.title: a for a in Announcement.objects.all()}
    assert by_title["Planned"].publish_at is None  # read-only for the editor: a draft
    assert by_title["Planned"].created_by == editor
    scheduled = by_title["Planned by publisher"]
    assert scheduled.publish_at is not None
    assert scheduled.scheduled_by == publisher


def test_a_group_audience_needs_a_group(publisher):
    response = client_for(publisher).post(
        f"{CHANGELIST}add/",
        {"title": "To whom?", "kind": "announcement", "level": "info", "audience": "groups"},
    )
    assert "choose at least one group" in response.content.decode()
    assert not Announcement.objects.exists()


def test_a_published_announcements_content_is_read_only_with_a_reason(publisher):
    a = announcement_create(title="Sent")
    announcement_publish(announcement=a, by=publisher)
    client = client_for(publisher)
    page = client.get(f"{CHANGELIST}{a.pk}/change/").content.decode()
    for field in ("title", "body", "kind", "level", "audience", "groups", "publish_at"):
        assert f'name="{field}' not in page, field
    assert 'name="expires_at_0"' in page  # expiring stays the way to stop showing it
    assert "its content and audience can no longer change" in page
    client.post(f"{CHANGELIST}{a.pk}/change/", {**edit_form("Rewritten"), "expires_at_0": ""})
    a.refresh_from_db()
    assert a.title == "Sent"


def edit_form(title: str, **extra: str) -> dict[str, str]:
    return {
        "title": title,
        "body": "changed body",
        "kind": "announcement",
        "level": "error",
        "audience": "everyone",
        "expires_at_0": "",
        "expires_at_1": "",
        **extra,
    }


def test_an_editor_cannot_change_an_announcement_a_publisher_scheduled(publisher, editor):
    tomorrow = timezone.now() + timedelta(days=1)
    a = announcement_create(title="Planned", publish_at=tomorrow, created_by=publisher)
    client = client_for(editor)
    response = client.get(f"{CHANGELIST}{a.pk}/change/")
    page = response.content.decode()
    assert response.status_code == 200
    assert 'name="title"' not in page  # shown, not editable
    assert "only staff who may publish announcements can change it" in page
    response = client.post(f"{CHANGELIST}{a.pk}/change/", edit_form("Free pizza! Click here"))
    assert response.status_code == 403
    a.refresh_from_db()
    assert (a.title, a.body, a.level, a.scheduled_by) == ("Planned", "", "info", publisher)


def test_an_editor_still_edits_drafts(editor):
    a = announcement_create(title="Draft", created_by=editor)
    response = client_for(editor).post(f"{CHANGELIST}{a.pk}/change/", edit_form("Better draft"))
    assert response.status_code == 302
    a.refresh_from_db()
    assert (a.title, a.publish_at) == ("Better draft", None)


def test_a_publisher_who_edits_a_scheduled_announcement_publishes_it(publisher):
    tomorrow = timezone.now() + timedelta(days=1)
    other = staff("other-publisher", *EDIT_PERMS, "publish_announcement")
    a = announcement_create(title="Planned", publish_at=tomorrow, created_by=other)
    local = timezone.localtime(tomorrow)
    form = edit_form(
        "Planned, corrected",
        publish_at_0=local.strftime("%Y-%m-%d"),
        publish_at_1=local.strftime("%H:%M:%S"),
    )
    response = client_for(publisher).post(f"{CHANGELIST}{a.pk}/change/", form)
    assert response.status_code == 302
    a.refresh_from_db()
    assert (a.title, a.scheduled_by) == ("Planned, corrected", publisher)


@pytest.mark.parametrize("object_id", ["abc", "1.5", "9999", "-1", "%2F"])
def test_publishing_a_missing_or_malformed_id_is_404(publisher, object_id):
    response = client_for(publisher).post(f"{CHANGELIST}{object_id}/publish/")
    assert response.status_code == 404
    assert not Announcement.objects.filter(published_at__isnull=False).exists()


# ---------------------------------------------------------------- deleting


@pytest.fixture
def deleter(db):
    """Staff who may delete announcements but not publish them."""
    return staff("deleter", *EDIT_PERMS, "delete_announcement")


@pytest.fixture
def published(publisher):
    a = announcement_create(title="Out there", created_by=publisher)
    announcement_publish(announcement=a, by=publisher)
    return a


def test_staff_without_the_publish_permission_cannot_delete_a_published_announcement(
    deleter, published
):
    client = client_for(deleter)
    assert client.get(f"{CHANGELIST}{published.pk}/delete/").status_code == 403
    assert client.post(f"{CHANGELIST}{published.pk}/delete/", {"post": "yes"}).status_code == 403
    client.post(
        CHANGELIST,
        {"action": "delete_selected", "_selected_action": [published.pk], "post": "yes"},
    )
    assert Announcement.objects.filter(pk=published.pk).exists()


def test_staff_without_the_publish_permission_may_still_delete_a_draft(deleter):
    draft = announcement_create(title="Never sent")
    response = client_for(deleter).post(f"{CHANGELIST}{draft.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Announcement.objects.filter(pk=draft.pk).exists()


def test_a_publisher_deletes_a_published_announcement_and_it_is_replayed_as_expired(
    publisher, published, django_capture_on_commit_callbacks
):
    from notifications.storage import ReplayStorage

    staff_perms = Permission.objects.filter(codename="delete_announcement")
    publisher.user_permissions.add(*staff_perms)
    before = published.sequence
    with django_capture_on_commit_callbacks(execute=True):
        response = client_for(publisher).post(
            CHANGELIST,
            {"action": "delete_selected", "_selected_action": [published.pk], "post": "yes"},
        )
    assert response.status_code == 302
    assert not Announcement.objects.filter(pk=published.pk).exists()
    # Pages replaying from before the delete drop it, in publish order.
    (event,) = ReplayStorage().get_events("announcements", before)
    assert (event.type, event.data, event.id) == (
        "announcement-expired",
        f'{{"id": {published.pk}}}',
        before + 1,
    )
    assert ReplayStorage().get_current_id("announcements") == before + 1
    # The next announcement takes the place after it.
    nxt = announcement_create(title="Next")
    announcement_publish(announcement=nxt, by=publisher)
    assert nxt.sequence == before + 2
