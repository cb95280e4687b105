"""The stored-URL check on the server, against the table the browser test uses too."""

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from notifications.models import is_link_url, validate_link_url

CASES = json.loads((Path(__file__).parent.parent / "data" / "link_urls.json").read_text())["cases"]


@pytest.mark.parametrize(("url", "linkable"), CASES)
def test_only_same_site_paths_and_http_urls_become_links(url, linkable):
    assert is_link_url(url) is linkable


@pytest.mark.parametrize("url", [url for url, linkable in CASES if url and not linkable])
def test_the_validator_refuses_what_a_page_would_not_link(url):
    with pytest.raises(ValidationError):
        validate_link_url(url)
