"""Links in server-rendered pages: only paths and http(s) URLs ever become an href."""

import pytest
from django.test import Client

from notifications.models import Notification
from notifications.services import notification_create
from tests.support.factories import make_user

pytestmark = pytest.mark.django_db

UNSAFE_URLS = [
    "javascript:alert(1)",
    "JavaScript:alert(document.cookie)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
]


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_admin_refuses_a_notification_with_a_script_url(alice, url):
    admin = Client()
    admin.force_login(make_user("root", is_staff=True, is_superuser=True))
    response = admin.post(
        "/admin/notifications/notification/add/",
        {
            "recipient": alice.pk,
            "title": "Click me",
            "kind": "general",
            "level": "info",
            "url": url,
        },
    )
    assert response.status_code == 200  # the form again, not a redirect to the list
    assert "url must be a path (/...) or an http(s) URL" in response.content.decode()
    assert not Notification.objects.exists()


def test_admin_accepts_a_path_or_https_url(alice):
    admin = Client()
    admin.force_login(make_user("root", is_staff=True, is_superuser=True))
    for url in ("/chat/general/", "https://example.com/deploys/7"):
        response = admin.post(
            "/admin/notifications/notification/add/",
            {"recipient": alice.pk, "title": "ok", "kind": "general", "level": "info", "url": url},
        )
        assert response.status_code == 302
    assert sorted(Notification.objects.values_list("url", flat=True)) == [
        "/chat/general/",
        "https://example.com/deploys/7",
    ]


@pytest.mark.parametrize("url", UNSAFE_URLS)
def test_inbox_shows_a_row_with_a_script_url_as_text_without_a_link(alice, alice_client, url):
    n = notification_create(recipient=alice, title="Smuggled", url="/ok/")
    Notification.objects.filter(pk=n.pk).update(url=url)  # around validation, as a raw write
    html = alice_client.get("/notifications/").content.decode()
    assert "Smuggled" in html
    assert "javascript:" not in html.lower()
    assert "data:text/html" not in html
    assert "vbscript:" not in html


def test_inbox_links_a_safe_url(alice, alice_client):
    notification_create(recipient=alice, title="Deploy done", url="/chat/general/")
    html = alice_client.get("/notifications/").content.decode()
    assert '<a href="/chat/general/">Deploy done</a>' in html
