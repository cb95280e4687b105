"""Create the demo users (alice, bob, charlie), notifications and rooms; safe to re-run."""

import logging
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from notifications.models import Notification
from notifications.services import notification_create

DEMO_PASSWORD = "pulse-demo-2026"
DEMO_USERS = (("alice", True), ("bob", False), ("charlie", False))


class Command(BaseCommand):
    help = "Create demo users alice (staff), bob and charlie, sample notifications and rooms."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--password", default=DEMO_PASSWORD)

    @transaction.atomic
    def handle(self, *args: Any, password: str, **options: Any) -> None:
        # Nobody is connected while seeding: a server that is not up yet is not worth a warning.
        logging.getLogger("realtime.layer").setLevel(logging.ERROR)
        User = get_user_model()
        for username, staff in DEMO_USERS:
            if User.objects.filter(username=username).exists():
                continue
            user = User.objects.create_user(
                username=username,
                email=f"{username}@example.com",
                password=password,
                is_staff=staff,
                is_superuser=staff,
            )
            self._welcome(user)
        self._rooms(User)
        self.stdout.write(
            self.style.SUCCESS(f"demo users: alice (staff), bob, charlie; password: {password}")
        )

    def _rooms(self, User: Any) -> None:
        # Rows only: nobody is connected yet, so nothing needs broadcasting.
        from feeds.models import Message, Room

        alice, bob = User.objects.get(username="alice"), User.objects.get(username="bob")
        general, created = Room.objects.get_or_create(
            slug="general", defaults={"title": "General", "created_by": alice}
        )
        if created:
            Message.objects.create(room=general, author=alice, content="Welcome to #General!")
            Message.objects.create(room=general, author=bob, content="Hi alice, glad to be here.")
        staff, created = Room.objects.get_or_create(
            slug="staff", defaults={"title": "Staff", "is_private": True, "created_by": alice}
        )
        if created:
            staff.members.add(alice)

    def _welcome(self, user: Any) -> None:
        if Notification.objects.filter(recipient=user).exists():
            return
        notification_create(
            recipient=user,
            title=f"Welcome to Pulse, {user.username}",
            body="New notifications appear here live, without reloading the page.",
            level="success",
        )
        notification_create(
            recipient=user,
            title="Try it from a shell",
            # Works as printed in a new terminal: the venv is not activated there, and the
            # demo server's DEBUG=1 (which allows the missing SECRET_KEY) is not set.
            body="Run this in another terminal, in the project directory, and watch the bell:\n"
            f"DEBUG=1 .venv/bin/python manage.py send_notifications --users {user.username} "
            '--title "Hello from the shell" --url /notifications/',
            level="info",
            url="/notifications/",
        )
