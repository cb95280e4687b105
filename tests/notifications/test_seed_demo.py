import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from feeds.models import Room
from notifications.models import Notification

pytestmark = pytest.mark.django_db


def test_seed_demo_creates_users_rooms_and_notifications_once(capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    User = get_user_model()
    assert sorted(User.objects.values_list("username", flat=True)) == ["alice", "bob", "charlie"]
    alice = User.objects.get(username="alice")
    assert alice.is_staff and alice.check_password("pulse-demo-2026")
    assert Notification.objects.filter(recipient=alice).count() == 2
    assert set(Room.objects.values_list("slug", "is_private")) == {
        ("general", False),
        ("staff", True),
    }
    assert "password: pulse-demo-2026" in capsys.readouterr().out
