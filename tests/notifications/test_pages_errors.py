"""The site's own error pages (DEBUG is off in the test settings)."""

import pytest
from django.test import Client

from tests.support.factories import PASSWORD

pytestmark = pytest.mark.django_db


def test_unknown_page_shows_the_sites_404_page(alice_client, client):
    html = alice_client.get("/no-such-page/")
    assert html.status_code == 404
    text = html.content.decode()
    assert "Page not found" in text
    assert "/no-such-page/" in text
    assert 'id="bell"' in text  # the site's own header, signed in
    anonymous = client.get("/nowhere/")
    assert anonymous.status_code == 404
    assert "Page not found" in anonymous.content.decode()


def test_a_stale_login_form_shows_a_page_that_offers_to_log_in_again(alice):
    browser = Client(enforce_csrf_checks=True)
    response = browser.post("/login/", {"username": "alice", "password": PASSWORD})
    assert response.status_code == 403
    text = response.content.decode()
    assert "That form has expired" in text
    assert 'href="/login/" id="log-in-again">Log in again</a>' in text
    assert 'class="topbar"' in text
    assert "CSRF verification failed" not in text  # not Django's raw page


def test_a_stale_logout_form_shows_the_same_page_and_keeps_the_session(alice_client):
    response = alice_client.post("/logout/")
    assert response.status_code == 403
    text = response.content.decode()
    assert "That form has expired" in text
    assert "Log in again" in text
    assert alice_client.get("/notifications/").status_code == 200  # still signed in


def test_a_server_error_shows_a_page_that_needs_no_database(alice_client, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr("notifications.selectors.notification_list", broken)
    alice_client.raise_request_exception = False
    response = alice_client.get("/notifications/")
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()


def test_the_500_page_renders_without_context_or_queries(rf, django_assert_num_queries):
    from notifications.http import server_error

    with django_assert_num_queries(0):
        response = server_error(rf.get("/notifications/"))
    assert response.status_code == 500
    assert "Something went wrong" in response.content.decode()
