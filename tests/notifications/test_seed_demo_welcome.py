"""The demo's welcome notification tells people a command that works as printed."""

import shlex

import pytest
from django.core.management import call_command

from notifications.models import Notification

pytestmark = pytest.mark.django_db


def test_the_shell_command_in_the_welcome_notification_sends_a_notification():
    call_command("seed_demo")
    tip = Notification.objects.get(recipient__username="bob", title="Try it from a shell")
    (line,) = [ln for ln in tip.body.splitlines() if ln.startswith("python manage.py ")]
    argv = shlex.split(line)
    call_command(*argv[2:])
    sent = Notification.objects.filter(recipient__username="bob").first()
    assert sent.title == "Hello from the shell"
    assert sent.url == "/notifications/"
    assert not Notification.objects.filter(recipient__username="alice", title=sent.title).exists()
