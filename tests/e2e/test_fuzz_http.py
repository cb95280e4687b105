"""Property-based fuzzing of the SSE resume header and the API's query parameters."""

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.factories import session_cookie

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

# Header-safe text: printable ASCII without surrounding blanks (HTTP clients cannot send
# CR/LF/NUL; daphne itself answers 400 to non-ASCII header bytes before the app runs).
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=300
).filter(lambda s: s == s.strip(" \t"))
channel_name = st.sampled_from(["user", "user-", "group", "announcements", "activity", "x"])
near_valid_id = st.lists(
    st.tuples(
        st.one_of(channel_name, st.builds(lambda n: f"user-{n}", st.integers(-5, 10**20))),
        st.one_of(st.integers(-10, 10**20).map(str), header_text),
    ),
    min_size=1,
    max_size=12,
).map(lambda parts: ",".join(f"{c}:{i}" for c, i in parts))

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def check_events_reply(client: httpx.Client, **request) -> None:
    with client.stream("GET", "/events/", **request) as response:
        if response.status_code == 200:
            assert response.headers["content-type"].startswith("text/event-stream")
            head = b""
            for chunk in response.iter_bytes():
                head += chunk
                if b"event: stream-open" in head or b"stream-error" in head:
                    break
            assert head.startswith(b"id: ")
        else:
            response.read()
            assert response.status_code in (400, 403), response.text
            assert response.headers["content-type"] == "application/json"
            assert response.json()["error"]


@pytest.fixture
def alice_http(server, alice):
    with httpx.Client(
        base_url=server.url, cookies={"sessionid": session_cookie(alice)}, timeout=5
    ) as client:
        yield client


@FUZZ
@given(last_event_id=st.one_of(header_text, near_valid_id))
@pytest.mark.slow
def test_any_last_event_id_gets_a_stream_or_a_clear_4xx(alice_http, last_event_id):
    check_events_reply(alice_http, headers={"Last-Event-ID": last_event_id})


@FUZZ
@given(
    channels=st.lists(st.one_of(header_text, channel_name), max_size=12),
    last_event_id=st.one_of(st.none(), near_valid_id),
)
@pytest.mark.slow
def test_any_channel_list_and_query_id_gets_a_stream_or_a_clear_4xx(
    alice_http, channels, last_event_id
):
    params = [("channel", c) for c in channels]
    if last_event_id is not None:
        params.append(("lastEventId", last_event_id))
    check_events_reply(alice_http, params=params)


@FUZZ
@given(
    params=st.dictionaries(
        st.sampled_from(["unread", "before", "limit", "junk"]), header_text, max_size=4
    )
)
@pytest.mark.slow
def test_any_list_parameters_get_results_or_a_400(alice_http, params):
    response = alice_http.get("/api/notifications/", params=params)
    assert response.status_code in (200, 400), response.text
    body = response.json()
    assert ("results" in body) if response.status_code == 200 else body["error"]
