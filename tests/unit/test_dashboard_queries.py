"""Pure parts of the dashboard's reads and of alert rules: the opaque cursor, rendering, threshold rules."""

from __future__ import annotations

import base64
import contextlib
import json
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lib.alerts import AlertRule, Direction, InvalidAlertRuleError
from lib.dashboard_queries import InvalidCursorError, decode_cursor, encode_cursor, render_item

KEY = {"item_id": "0123456789abcdef0123456789abcdef", "published_at": "2026-01-05T14:30:01.234Z", "ticker": "AAPL"}


def b64(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def test_a_cursor_round_trips_and_hides_nothing_readable() -> None:
    cursor = encode_cursor(KEY)
    assert decode_cursor(cursor, "AAPL") == KEY
    assert "AAPL" not in cursor and "=" not in cursor


@pytest.mark.parametrize("cursor", [
    "", "%%%", "not base64 at all!", b64([1, 2]), b64({"item_id": KEY["item_id"]}),
    b64({**KEY, "extra": "x"}), b64({**KEY, "item_id": "../../etc/passwd"}), b64({**KEY, "published_at": 5}),
    b64({**KEY, "ticker": "aapl"}), "A" * 600,
])
def test_a_cursor_this_api_did_not_hand_out_is_refused(cursor: str) -> None:
    with pytest.raises(InvalidCursorError):
        decode_cursor(cursor, "AAPL")


def test_a_cursor_is_bound_to_its_ticker() -> None:
    with pytest.raises(InvalidCursorError, match="another ticker"):
        decode_cursor(encode_cursor(KEY), "MSFT")


@given(st.text(max_size=600))
def test_decoding_arbitrary_text_never_raises_anything_but_invalid_cursor(text: str) -> None:
    with contextlib.suppress(InvalidCursorError):
        decode_cursor(text, "AAPL")


def test_render_item_shows_sentiment_only_once_analysed() -> None:
    row = {**KEY, "headline": "h", "status": "pending", "sentiment_score": Decimal("0.5"), "sentiment_label": "x"}
    assert render_item(row)["sentiment"] is None
    analysed = render_item({**row, "status": "analyzed", "sentiment_label": "positive"})
    assert analysed["sentiment"] == {"label": "positive", "score": 0.5, "trace_id": None}  # scored before it was kept
    trace_id = "1-6b14d8a4-a8ea60d02240f27223eec1f9"
    traced = render_item({**row, "status": "analyzed", "sentiment_label": "positive", "analysis_trace_id": trace_id})
    assert traced["sentiment"] == {"label": "positive", "score": 0.5, "trace_id": trace_id}


@pytest.mark.parametrize(("direction", "threshold", "score", "fires"), [
    (Direction.ABOVE, 0.5, 0.51, True), (Direction.ABOVE, 0.5, 0.5, False), (Direction.ABOVE, 0.5, -0.9, False),
    (Direction.BELOW, -0.2, -0.21, True), (Direction.BELOW, -0.2, -0.2, False), (Direction.BELOW, -0.2, 0.3, False),
])
def test_a_rule_fires_strictly_beyond_its_threshold(direction: Direction, threshold: float, score: float,
                                                   fires: bool) -> None:
    rule = AlertRule("a" * 32, "AAPL", direction, threshold, "me@example.com", "2026-01-05T14:30:01.234Z", "owner-1")
    assert rule.matches(score) is fires


def test_a_malformed_stored_rule_is_a_typed_error() -> None:
    with pytest.raises(InvalidAlertRuleError):
        AlertRule.from_item({"pk": "alert", "sk": "x", "ticker": "AAPL", "direction": "sideways", "threshold": 1,
                             "email": "e", "created_at": "t"})
    public = AlertRule.from_item({"pk": "alert", "sk": "x", "ticker": "AAPL", "direction": "below",
                                  "threshold": Decimal("-0.3"), "email": "e@x.io", "created_at": "t", "owner": "o",
                                  "stream_token_sha256": "f" * 64}).public()
    assert public == {"alert_id": "x", "ticker": "AAPL", "direction": "below", "threshold": -0.3, "email": "e@x.io"}
