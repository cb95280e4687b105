"""Moderation: timed mutes, bans, and reports in the admin queue."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.test import Client
from django.utils import timezone

from feeds import access, membership, moderation, services
from feeds.models import Report, Room, RoomMute
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def club(alice, bob) -> Room:
    room = services.room_create(title="Club", created_by=alice, is_private=True)
    membership.room_member_add(room=room, by=alice, username="bob")
    return room


def refusal(call, **kw) -> str:
    with pytest.raises(ValidationError) as exc:
        call(**kw)
    return exc.value.code


def test_a_muted_member_cannot_post_until_the_mute_ends(club, alice, bob):
    moderation.room_mute(room=club, by=alice, username="bob", minutes=5)
    with pytest.raises(ValidationError) as exc:
        services.message_post(room=club, author=bob, content="let me talk")
    assert exc.value.code == "muted" and 295 <= exc.value.params["remaining"] <= 300
    RoomMute.objects.update(until=timezone.now() - timedelta(seconds=1))
    assert services.message_post(room=club, author=bob, content="back")[1] is True


def test_only_moderators_mute_or_ban_and_never_each_other(club, alice, bob, charlie):
    assert refusal(moderation.room_mute, room=club, by=bob, username="alice", minutes=1) == (
        "forbidden"
    )
    assert refusal(moderation.room_ban, room=club, by=alice, username="alice") == "forbidden"
    assert refusal(moderation.room_ban, room=club, by=alice, username="charlie") == "not_found"
    assert refusal(moderation.room_ban, room=club, by=alice, username="nobody") == "not_found"
    assert not RoomMute.objects.exists()


def test_a_banned_member_is_removed_and_cannot_come_back(club, alice, bob):
    moderation.room_ban(room=club, by=alice, username="bob")
    assert not club.members.filter(pk=bob.pk).exists()
    assert access.room_for(bob, "club") is None
    assert refusal(membership.room_member_add, room=club, by=alice, username="bob") == ("forbidden")


def test_a_ban_shuts_a_public_room_too(alice, bob):
    room = Room.objects.create(slug="general", title="General", created_by=alice)
    moderation.room_ban(room=room, by=alice, username="bob")
    assert access.room_for(bob, "general") is None
    assert not access.rooms_visible_to(bob).filter(pk=room.pk).exists()


def test_reports_land_in_the_admin_queue_with_their_context(club, alice, bob):
    # "-said": no CSRF token on the page can contain it (a bare "m8" once was in one).
    said = [f"m{i}-said" for i in range(9)]
    ids = [services.message_post(room=club, author=bob, content=c)[0]["id"] for c in said]
    moderation.message_report(room=club, reporter=alice, message_id=ids[4], reason="rude")
    moderation.message_report(room=club, reporter=alice, message_id=ids[4])  # again: one
    assert Report.objects.count() == 1
    admin = Client()
    admin.force_login(make_user("root", is_staff=True, is_superuser=True))
    page = admin.get("/admin/feeds/report/").content.decode()
    assert said[4] in page and "club" in page
    report = Report.objects.get()
    detail = admin.get(f"/admin/feeds/report/{report.pk}/change/").content.decode()
    assert all(said[i] in detail for i in range(1, 8)) and said[8] not in detail
    assert "rude" in detail
    admin.post(
        "/admin/feeds/report/",
        {"action": "delete_messages", "_selected_action": [report.pk]},
    )
    report.refresh_from_db()
    assert report.resolved_at is not None and report.message.deleted_at is not None
