"""Requests as a browser page makes them."""

import json
from typing import Any

from django.test import Client


def csrf_token(client: Client) -> str:
    client.get("/notifications/")  # sets the csrftoken cookie, as a page load does
    return client.cookies["csrftoken"].value


def csrf_post(client: Client, path: str, data: dict[str, Any] | None = None):
    return client.post(path, data or {}, HTTP_X_CSRFTOKEN=csrf_token(client))


def csrf_put_json(client: Client, path: str, data: Any = None, *, raw: str | None = None):
    """PUT a JSON body (`raw` as it is, else `data` encoded) as a page's fetch() would."""
    body = raw if raw is not None else json.dumps(data)
    return client.put(
        path, body, content_type="application/json", HTTP_X_CSRFTOKEN=csrf_token(client)
    )
