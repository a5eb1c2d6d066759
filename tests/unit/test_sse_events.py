"""SSE event ids, frames, requests and settings of the SSE Lambda: the parts without I/O."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devstack.lambda_.events import function_url_event
from devstack.stack import load_stack
from lambdas.sse_streaming.events import (
    AFTER_ALL,
    BEFORE_ALL,
    InvalidEventIdError,
    Position,
    frame,
    parse_event_id,
)
from lambdas.sse_streaming.request import (
    BadRequestError,
    MalformedEventError,
    MethodNotAllowedError,
    NotFoundError,
    SessionHeaders,
    UnauthorizedError,
    parse_request,
)
from lambdas.sse_streaming.settings import SseSettings
from lib.config import ConfigurationError
from lib.news.model import iso_ms

timestamps = st.datetimes(min_value=dt.datetime(2020, 1, 1), max_value=dt.datetime(2040, 1, 1),
                          timezones=st.just(dt.UTC)).map(iso_ms)
item_ids = st.text("0123456789abcdef", min_size=32, max_size=32)
positions = st.builds(Position, timestamps, st.one_of(st.just(BEFORE_ALL), st.just(AFTER_ALL), item_ids))
sequences = st.integers(min_value=1, max_value=999_999)


@pytest.mark.req("FR-081")
@given(positions, positions, sequences, sequences)
def test_event_ids_sort_like_the_positions_they_stand_for(a: Position, b: Position, s: int, t: int) -> None:
    """A stream's ids only grow: control events at its cursor, items past it (as strings, too)."""
    if a < b:
        assert a.event_id(s) < b.event_id(t)
        if b.item not in (BEFORE_ALL, AFTER_ALL):
            assert a.event_id(s) < b.item_event_id()
    if s < t:
        assert a.event_id(s) < a.event_id(t)
    if a.item not in (BEFORE_ALL, AFTER_ALL):
        assert a.item_event_id() < a.event_id(s)
    assert parse_event_id(a.event_id(s)) == a


@pytest.mark.req("FR-081")
@given(timestamps, item_ids)
def test_an_item_id_resumes_right_after_that_item(ts: str, item: str) -> None:
    assert parse_event_id(Position(ts, item).item_event_id()) == Position(ts, item)


@pytest.mark.req("FR-081", "FR-018")
@pytest.mark.parametrize("value", [
    "", "42", "2026-11-25T08:00:00Z/", "2026-11-25T08:00:00.123Z", "2026-11-25T08:00:00.123Z/ABC",
    "2026-11-25T08:00:00.123Z/" + "a" * 31, "2026-11-25T08:00:00.123Z//12", "2026-11-25T08:00:00.123Z/~/x",
    "2026-11-25T08:00:00.123Z//000001" + "0" * 200,
])
def test_ids_this_server_never_issued_are_refused(value: str) -> None:
    with pytest.raises(InvalidEventIdError):
        parse_event_id(value)


@pytest.mark.req("FR-088")
def test_a_frame_is_one_event_with_one_line_of_json_data() -> None:
    data = {"headline": "line one\nline two\r\n", "score": 0.5}
    encoded = frame("sentiment_update", data, "i/1", retry_ms=250)
    lines = encoded.decode().split("\n")
    assert lines[:3] == ["retry: 250", "id: i/1", "event: sentiment_update"]
    assert json.loads(lines[3].removeprefix("data: ")) == data and lines[4:] == ["", ""]
    assert b"retry" not in frame("heartbeat", {}, "i/2")


# -- requests ---------------------------------------------------------------------------------------
def _parse(path: str = "/api/v2/stream", method: str = "GET", **headers: str) -> Any:
    return parse_request(function_url_event(method, path, headers))


@pytest.mark.req("FR-048", "FR-081")
def test_a_stream_request_carries_its_session_and_resume_point() -> None:
    request = _parse(**{"X-SSE-Session-Id": "9d1f6a8e-7d3c-4a1b-8f00-0a1b2c3d4e5f",
                        "X-SSE-Previous-Trace-Id": "1-5759e988-bd862e3fe1be46a994272793",
                        "X-SSE-Connection-Sequence": "12", "Last-Event-ID": "2026-11-25T08:00:00.123Z/~/000004"})
    assert request.route == "global"
    assert request.session.session_id == "9d1f6a8e-7d3c-4a1b-8f00-0a1b2c3d4e5f"
    assert request.session.previous_trace_id == "1-5759e988-bd862e3fe1be46a994272793"
    assert request.session.connection_sequence == 12
    assert request.last_event_id == Position("2026-11-25T08:00:00.123Z", AFTER_ALL)
    assert _parse(**{"Last-Event-ID": "  "}).last_event_id is None  # blank: a first connection


def test_routes() -> None:
    assert _parse("/api/v2/stream/status").route == "status"
    config = _parse("/api/v2/configurations/alert-1/stream", **{"X-Auth-Token": "t0k.en_~+/="})
    assert (config.route, config.alert_id, config.bearer_token) == ("config", "alert-1", "t0k.en_~+/=")
    with pytest.raises(NotFoundError):
        _parse("/api/v2/streams")
    with pytest.raises(NotFoundError):
        _parse("/api/v2/configurations/" + "x" * 65 + "/stream", **{"X-Auth-Token": "t"})
    with pytest.raises(MethodNotAllowedError):
        _parse(method="DELETE")


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("headers", [{}, {"X-Auth-Token": ""}, {"X-Auth-Token": "two words"},
                                     {"X-Auth-Token": "x" * 513}, {"Authorization": "Bearer t0ken"}])
def test_a_config_stream_without_a_proper_stream_token_is_unauthorized(headers: dict[str, str]) -> None:
    """The token travels in X-Auth-Token: behind OAC, Authorization is CloudFront's signature."""
    with pytest.raises(UnauthorizedError) as raised:
        _parse("/api/v2/configurations/alert-1/stream", **headers)
    assert raised.value.status == 401 and raised.value.headers["www-authenticate"].startswith("X-Auth-Token")


@pytest.mark.req("FR-018", "FR-048")
@pytest.mark.parametrize(("header", "value"), [
    ("X-SSE-Session-Id", "a b"), ("X-SSE-Previous-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793"),
    ("X-SSE-Connection-Sequence", "01"), ("Last-Event-ID", "yesterday"),
])
def test_malformed_headers_are_bad_requests(header: str, value: str) -> None:
    with pytest.raises(BadRequestError) as raised:
        _parse(**{header: value})
    assert raised.value.status == 400


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("event", [
    None, [], "GET /api/v2/stream",
    {"rawPath": "/api/v2/stream", "headers": {}},
    {"rawPath": "/api/v2/stream", "requestContext": {"requestId": "r"}},
    {"rawPath": "/api/v2/stream", "requestContext": {"requestId": "r", "http": {"method": 7}}},
    {"rawPath": None, "requestContext": {"requestId": "r", "http": {"method": "GET"}}},
    {"rawPath": "/api/v2/stream", "requestContext": {"http": {"method": "GET"}}},
    {"rawPath": "/api/v2/stream", "requestContext": {"requestId": "r", "http": {"method": "GET"}},
     "headers": {"last-event-id": 5}},
    {"rawPath": "/api/v2/stream", "requestContext": {"requestId": "r", "http": {"method": "GET"}}, "headers": []},
])
def test_a_malformed_event_is_a_typed_error(event: Any) -> None:
    with pytest.raises(MalformedEventError):
        parse_request(event)


@pytest.mark.req("FR-018")
def test_an_event_without_headers_is_a_request_without_headers() -> None:
    event = {"rawPath": "/api/v2/stream", "requestContext": {"requestId": "r-1", "http": {"method": "GET"}}}
    request = parse_request(event)
    assert (request.route, request.request_id, request.last_event_id, request.session) == (
        "global", "r-1", None, SessionHeaders())


# -- settings ---------------------------------------------------------------------------------------
def test_settings_from_the_stack_map_environment() -> None:
    settings = SseSettings.from_env({"NEWS_TABLE": "n", "CONFIG_TABLE": "c", "SSE_POLL_INTERVAL_S": "0.5",
                                     "SSE_INDEX_SETTLE_MS": "250", "SSE_RETRY_MS": "3000"})
    assert (settings.poll_interval_s, settings.index_settle_s, settings.retry_ms) == (0.5, 0.25, 3000)
    with pytest.raises(ConfigurationError):
        SseSettings.from_env({"NEWS_TABLE": "n"})
    for lifetime in ("lots", "0", "901"):  # FR-090: bounded, and never past any function timeout
        with pytest.raises(ConfigurationError):
            SseSettings.from_env({"NEWS_TABLE": "n", "CONFIG_TABLE": "c", "SSE_STREAM_LIFETIME_S": lifetime})
    with pytest.raises(ConfigurationError):
        SseSettings.from_env({"NEWS_TABLE": "n", "CONFIG_TABLE": "c", "SSE_POLL_INTERVAL_S": "0"})


@pytest.mark.req("FR-007")
def test_the_change_marker_interval_is_read_zero_turns_it_off_and_the_stack_reads_it_faster_than_it_polls() -> None:
    base = {"NEWS_TABLE": "n", "CONFIG_TABLE": "c"}
    assert SseSettings.from_env({**base, "SSE_MARKER_INTERVAL_S": "0.25"}).marker_interval_s == 0.25
    assert SseSettings.from_env({**base, "SSE_MARKER_INTERVAL_S": "0"}).marker_interval_s == 0  # the naive design
    for bad in ("-1", "soon"):
        with pytest.raises(ConfigurationError):
            SseSettings.from_env({**base, "SSE_MARKER_INTERVAL_S": bad})
    stack = SseSettings.from_env({**load_stack().function("sse_streaming").env, **base})
    # the query is the safety net; the latency goal (p95 <= 1 s) rests on the marker read
    assert 0 < stack.marker_interval_s <= 0.5 < stack.poll_interval_s


@pytest.mark.req("FR-090", "FR-085")
def test_the_stack_maps_stream_lifetime_is_well_under_the_function_timeout() -> None:
    """An abandoned stream costs at most its lifetime: a fraction of the timeout, not all of it."""
    spec = load_stack().function("sse_streaming")
    settings = SseSettings.from_env({**spec.env, "NEWS_TABLE": "n", "CONFIG_TABLE": "c"})
    assert settings.stream_lifetime_s <= spec.timeout_s / 4, (settings.stream_lifetime_s, spec.timeout_s)
    assert settings.stream_lifetime_s + settings.deadline_margin_s < spec.timeout_s
