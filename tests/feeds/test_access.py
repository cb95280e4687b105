"""Who may enter which room (feeds.access): the rule, and what a connect pays to ask it."""

from __future__ import annotations

import pytest

from feeds import access
from feeds.models import Room

pytestmark = pytest.mark.django_db


@pytest.fixture
def rooms(alice):
    public = Room.objects.create(slug="general", title="General")
    private = Room.objects.create(slug="secret", title="Secret", is_private=True)
    private.members.add(alice)
    return public, private


def test_room_for_follows_the_listing_rule_for_everyone(rooms, alice, bob):
    for user in (alice, bob):
        visible = set(access.rooms_visible_to(user).values_list("slug", flat=True))
        for slug in ("general", "secret", "nowhere"):
            room = access.room_for(user, slug)
            assert (room is not None) == (slug in visible), (user.username, slug)


def test_an_inactive_user_enters_no_room(rooms, alice):
    alice.is_active = False
    assert access.room_for(alice, "general") is None
    assert access.room_for(alice, "secret") is None


def test_a_public_room_costs_one_query_and_a_private_one_two(
    rooms, alice, django_assert_num_queries
):
    with django_assert_num_queries(1):
        assert access.room_for(alice, "general") == rooms[0]
    with django_assert_num_queries(2):
        assert access.room_for(alice, "secret") == rooms[1]
