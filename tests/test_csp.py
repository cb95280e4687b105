"""The Content-Security-Policy header on pages, API answers and the admin."""

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.django_db

EXPECTED = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}


def directives(header: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in header.split(";") if part.strip())


@pytest.mark.parametrize("path", ["/login/", "/notifications/", "/api/notifications/", "/admin/"])
def test_every_answer_carries_a_strict_policy(admin_client, path):
    header = admin_client.get(path, follow=True)["Content-Security-Policy"]
    policy = directives(header)
    assert {name: policy.get(name) for name in EXPECTED} == EXPECTED
    assert "unsafe-inline" not in header
    assert "unsafe-eval" not in header


def test_no_template_has_inline_script_style_or_handlers():
    root = Path(__file__).resolve().parent.parent / "templates"
    # Emails are not pages (no CSP applies) and mail clients drop linked or <style> CSS:
    # their inline style attributes are how email HTML is styled.
    emails = root / "notifications" / "email"
    inline = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|<style\b|\sstyle=|\son[a-z]+=", re.I)
    found = [
        f"{path.relative_to(root)}: {match[0]}"
        for path in root.rglob("*.html")
        if emails not in path.parents
        for match in inline.finditer(path.read_text())
    ]
    assert found == []
