"""The Python client doubles copy numbers from the real clients; they must not drift.

tests/e2e/test_client_doubles_browser.py checks their behaviour against the real clients in
Chromium; this checks the constants they copy, at every run of the fast tier.
"""

import re

from tests.support import chat_tab
from tests.support.servers import ROOT

CHAT_JS = (ROOT / "static/feeds/chat.js").read_text()


def test_the_chat_double_backs_off_as_chat_js_does() -> None:
    backoff = re.search(
        r"slow \? (\d+) : Math\.min\((\d+), (\d+) \* 2 \*\* Math\.min\(attempts - 1, (\d+)\)\)",
        CHAT_JS,
    )
    assert backoff, "chat.js's reconnect backoff changed: update tests/support/chat_tab.py"
    assert tuple(map(int, backoff.groups())) == (
        chat_tab.RATE_LIMITED_BACKOFF_MS,
        chat_tab.BACKOFF_MAX_MS,
        chat_tab.BACKOFF_FIRST_MS,
        chat_tab.BACKOFF_MAX_DOUBLINGS,
    )
    low, span = chat_tab.RATE_LIMITED_JITTER_LOW, chat_tab.RATE_LIMITED_JITTER_SPAN
    assert f"slow ? base * ({low} + Math.random() * {span}) : base * Math.random()" in CHAT_JS
    assert "const slow = code === CLOSE_RATE_LIMITED || code === CLOSE_TOO_MANY_CONNECTIONS" in (
        CHAT_JS
    ), "chat.js waits long after other codes now: update chat_tab.SLOW_CODES"
    assert f"attempts >= {chat_tab.ASK_API_AFTER_ATTEMPTS} && !(await stillWelcome())" in CHAT_JS


def test_the_chat_double_knows_chat_js_close_codes() -> None:
    for name in (
        "CLOSE_SIGNED_OUT",
        "CLOSE_ACCESS_REVOKED",
        "CLOSE_RATE_LIMITED",
        "CLOSE_TOO_MANY_CONNECTIONS",
    ):
        value = getattr(chat_tab, name)
        assert re.search(rf"\bconst {name} = {value};", CHAT_JS), (
            f"{name} is not {value} in chat.js"
        )
