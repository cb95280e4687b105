"""The demo's "Try it from a shell" notification gives a command that works as printed, in
a new terminal: no activated virtualenv, none of the demo server's environment."""

import os
import subprocess
import sys

import pytest
from django.core.management import call_command

from notifications.models import Notification
from tests.support import servers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_the_command_in_the_demo_tip_sends_a_notification_from_a_new_terminal(redis_server):
    call_command("seed_demo")
    tip = Notification.objects.get(recipient__username="bob", title="Try it from a shell")
    (line,) = [ln for ln in tip.body.splitlines() if "manage.py send_notifications" in ln]
    # The tip names bin/run's virtualenv; the command runs on this test run's interpreter,
    # which is another one when the suite runs on another Python (VENV=.venv-3.13 bin/test).
    assert " .venv/bin/python manage.py " in line
    line = line.replace(" .venv/bin/python ", f" {sys.executable} ")
    # A bare terminal: PATH and HOME only. The database and Redis are the test run's (the
    # demo's defaults, ./db.sqlite3 and .run/redis.sock, are what bin/run serves).
    env = {
        "PATH": os.environ["PATH"],
        "HOME": os.environ.get("HOME", "/root"),
        "DATABASE_URL": servers.database_url(),
        "REDIS_URL": redis_server.url,
    }
    done = subprocess.run(
        ["bash", "-c", line], cwd=servers.ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "sent 1 notifications to 1 users" in done.stdout
    sent = Notification.objects.filter(recipient__username="bob").first()
    assert (sent.title, sent.url) == ("Hello from the shell", "/notifications/")
    assert not Notification.objects.filter(recipient__username="alice", title=sent.title).exists()
