"""Requests as a browser page makes them."""

from django.test import Client


def csrf_post(client: Client, path: str):
    client.get("/notifications/")  # sets the csrftoken cookie, as a page load does
    token = client.cookies["csrftoken"].value
    return client.post(path, HTTP_X_CSRFTOKEN=token)
