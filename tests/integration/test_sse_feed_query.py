"""The SSE poll's DynamoDB query (status-index) against moto: a limit never cuts through one instant."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from decimal import Decimal

import boto3
import pytest

from devstack.aws.resources import Resources
from devstack.xray.pipeline import TracePipeline
from lambdas.sse_streaming.events import AFTER_ALL, BEFORE_ALL, Position
from lambdas.sse_streaming.feed import MalformedItemError, query_analysed

SERVICE = "sentiment-analyzer-sse_streaming"


@pytest.fixture
def news(stack_resources: Resources, trace_pipeline: TracePipeline, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("OTEL_SERVICE_NAME", SERVICE)  # the query's span needs the function's OTel provider
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", SERVICE)
    yield stack_resources.tables["news"]


def _put(table: str, ts: str, **extra: object) -> str:
    item_id = secrets.token_hex(16)
    item = {"item_id": item_id, "published_at": ts, "ticker": "QRY", "headline": "h", "status": "analyzed",
            "status_changed_at": ts, "analyzed_at": ts, "sentiment_label": "neutral",
            "sentiment_score": Decimal("0.01"), **extra}
    boto3.resource("dynamodb").Table(table).put_item(Item={k: v for k, v in item.items() if v is not None})
    return item_id


@pytest.mark.req("FR-081", "FR-009")
def test_reading_in_small_steps_loses_and_repeats_nothing(news: str) -> None:
    first, second = "2031-01-02T03:04:05.001Z", "2031-01-02T03:04:05.002Z"
    ids = sorted((first, _put(news, first)) for _ in range(3)) + sorted((second, _put(news, second)) for _ in range(4))
    cursor, read = Position("2031-01-02T03:04:05.000Z", BEFORE_ALL), []
    for _ in range(4):
        result = query_analysed(news, cursor, "2031-01-02T03:04:06.000Z", limit=2)
        assert all(item.position > cursor for item in result.items)
        read += [(item.position.ts, item.item_id) for item in result.items]
        cursor = result.horizon
    assert read == ids
    assert cursor == Position("2031-01-02T03:04:06.000Z", AFTER_ALL)
    assert query_analysed(news, Position("2031-01-02T03:04:07.000Z", BEFORE_ALL), "2031-01-02T03:04:06.000Z",
                          limit=2).items == []  # a cursor past the horizon reads nothing


@pytest.mark.req("FR-081", "FR-007")
def test_looking_past_the_settle_line_reports_the_earliest_settling_item_and_delivers_none_of_it(news: str) -> None:
    settled = [("2033-01-02T03:04:05.100Z", _put(news, "2033-01-02T03:04:05.100Z")) for _ in range(3)]
    for ts in ("2033-01-02T03:04:05.700Z", "2033-01-02T03:04:05.600Z", "2033-01-02T03:04:06.100Z"):
        _put(news, ts)
    start = Position("2033-01-02T03:04:05.000Z", BEFORE_ALL)
    until, now = "2033-01-02T03:04:05.500Z", "2033-01-02T03:04:06.000Z"
    whole = query_analysed(news, start, until, limit=10, visible_ts=now)
    assert [(i.position.ts, i.item_id) for i in whole.items] == sorted(settled)
    assert whole.next_settle_ts == "2033-01-02T03:04:05.600Z"  # the 06.100 one is not visible yet
    assert whole.horizon == Position(until, AFTER_ALL)
    cut = query_analysed(news, start, until, limit=3, visible_ts=now)  # the limit is spent on settled rows
    assert (len(cut.items), cut.next_settle_ts) == (3, None)
    assert query_analysed(news, start, until, limit=10).next_settle_ts is None  # without visible_ts: as before


@pytest.mark.req("FR-018")
def test_an_analysed_row_without_its_score_is_a_typed_error(news: str) -> None:
    ts = "2032-05-06T07:08:09.010Z"
    _put(news, ts, sentiment_label=None)
    with pytest.raises(MalformedItemError):
        query_analysed(news, Position("2032-05-06T07:08:09.000Z", BEFORE_ALL), "2032-05-06T07:08:10.000Z", 10)
