"""Login throttling (django-axes): wrong passwords lock out a username and a client address."""

from __future__ import annotations

import httpx
import pytest
from django.conf import settings
from django.test import Client

from tests.support.factories import PASSWORD

LIMIT = getattr(settings, "AXES_FAILURE_LIMIT", 5)


def log_in(client: Client, username: str, password: str, path: str = "/login/"):
    return client.post(path, {"username": username, "password": password})


@pytest.mark.django_db
def test_wrong_passwords_lock_the_username_out_even_with_the_right_one(alice):
    client = Client(REMOTE_ADDR="10.0.0.1")
    for _ in range(LIMIT - 1):
        assert log_in(client, "alice", "wrong-password").status_code == 200  # the form again
    response = log_in(client, "alice", "wrong-password")
    assert response.status_code == 429
    # From another address too: the username itself is locked.
    response = log_in(Client(REMOTE_ADDR="10.0.0.2"), "alice", PASSWORD)
    assert response.status_code == 429
    text = response.content.decode()
    assert "Too many failed logins" in text
    assert "15 minutes" in text
    assert 'class="topbar"' in text  # the site's own page, not a bare message
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_wrong_passwords_from_one_address_lock_that_address_out(alice, bob):
    client = Client(REMOTE_ADDR="10.0.0.3")
    for i in range(LIMIT):
        log_in(client, f"nobody{i}", "wrong-password")
    assert log_in(client, "bob", PASSWORD).status_code == 429
    # Another address is not affected.
    assert log_in(Client(REMOTE_ADDR="10.0.0.4"), "bob", PASSWORD).status_code == 302


@pytest.mark.django_db
def test_the_admin_login_is_throttled_too(django_user_model):
    django_user_model.objects.create_superuser("root", "root@example.com", PASSWORD)
    client = Client(REMOTE_ADDR="10.0.0.5")
    for _ in range(LIMIT):
        log_in(client, "root", "wrong-password", "/admin/login/")
    response = log_in(client, "root", PASSWORD, "/admin/login/")
    assert response.status_code == 429
    assert "Too many failed logins" in response.content.decode()


def _post_login(base_url: str, username: str, password: str) -> httpx.Response:
    with httpx.Client(base_url=base_url, follow_redirects=False) as client:
        client.get("/login/")
        return client.post(
            "/login/",
            data={
                "username": username,
                "password": password,
                "csrfmiddlewaretoken": client.cookies["csrftoken"],
            },
            headers={"Referer": f"{base_url}/login/"},
        )


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_failures_on_one_server_process_lock_the_login_on_another(alice, server, second_server):
    for _ in range(LIMIT):
        _post_login(server.url, "alice", "wrong-password")
    response = _post_login(second_server.url, "alice", PASSWORD)
    assert response.status_code == 429
    assert "Too many failed logins" in response.text
