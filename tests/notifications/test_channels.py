import pytest
from django.contrib.auth.models import AnonymousUser, Group

from notifications.channels import (
    AccessChannelManager,
    can_read_channel,
    channels_for_user,
    parse_channel,
)

pytestmark = pytest.mark.django_db


def test_alice_reads_her_own_channels_and_public_ones(alice):
    for channel in (f"user-{alice.pk}", f"user-{alice.pk}-read", "announcements", "activity"):
        assert can_read_channel(alice, channel), channel


def test_bob_cannot_read_alices_stream(alice, bob):
    assert not can_read_channel(bob, f"user-{alice.pk}")
    assert not can_read_channel(bob, f"user-{alice.pk}-read")


@pytest.mark.parametrize(
    "channel",
    ["", "user-", "user-0", "user-0{pk}", "user-{pk} ", " user-{pk}", "user-{pk},user-2",
     "USER-{pk}", "user-{pk}-read-read", "group-{pk}-read", "user-%3{pk}", "user-{pk}\n",
     "anything", "user-{pk}/../2", "events", "user-" + "9" * 30, "user-{pk}\x00"],
)  # fmt: skip
def test_malformed_or_unknown_channels_are_denied(alice, channel):
    assert not can_read_channel(alice, channel.format(pk=alice.pk))


def test_anonymous_and_inactive_users_read_nothing(alice):
    assert not can_read_channel(AnonymousUser(), "announcements")
    assert not can_read_channel(None, "announcements")
    alice.is_active = False
    assert not can_read_channel(alice, f"user-{alice.pk}")


def test_group_channels_need_membership(alice, bob):
    staff = Group.objects.create(name="staff")
    alice.groups.add(staff)
    assert can_read_channel(alice, f"group-{staff.pk}")
    assert not can_read_channel(bob, f"group-{staff.pk}")
    assert f"group-{staff.pk}" in channels_for_user(alice)


def test_default_channels_are_the_users_own_and_announcements(alice):
    assert channels_for_user(alice) == [
        f"user-{alice.pk}",
        f"user-{alice.pk}-read",
        "announcements",
    ]


def test_parse_channel():
    assert parse_channel("user-42") == ("user", 42)
    assert parse_channel("user-42-read") == ("user-read", 42)
    assert parse_channel("group-7") == ("group", 7)
    assert parse_channel("announcements") == ("announcements", None)
    assert parse_channel("user-x") == ("", None)


def test_the_manager_plugs_the_same_rules_into_django_eventstream(alice, bob):
    manager = AccessChannelManager()
    assert manager.can_read_channel(alice, f"user-{alice.pk}")
    assert not manager.can_read_channel(bob, f"user-{alice.pk}")
    assert manager.is_channel_reliable("announcements")
