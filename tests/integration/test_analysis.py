"""The analysis Lambda: SNS event → VADER score → `analyzed` → time-series fan-out → scored topic."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from devstack.aws.cloudwatch import metric_dimensions, metric_samples
from devstack.xray.trace_reader import document_problems, render, silent_failures
from lambdas.analysis.service import FANOUT_ATTEMPTS, ItemNotFoundError
from lib.news.model import FEED_MARKER_KEY, Resolution, iso_ms
from lib.news.sentiment import score
from lib.sns_events import MalformedSnsEventError
from lib.tracing.header import TraceHeader
from tests.fixtures.news_pipeline import (  # noqa: F401  (fixtures)
    NewsHarness,
    aws_fault,
    function_name,
    news_fixture,
    news_server_fixture,
)

PUBLISHED = dt.datetime(2026, 1, 15, 9, 47, 31, 250000, tzinfo=dt.UTC)


@pytest.mark.req("FR-029", "SC-003")
def test_an_item_is_scored_marked_analyzed_fanned_out_and_handed_to_notification(news: NewsHarness) -> None:
    item = news.store_item("Nvidia posts excellent results and raises guidance", "Demand keeps booming",
                           ticker="NVDA", published=PUBLISHED)
    result, invocation = news.analyse(news.sns_event(item.message()))

    expected = score(item.headline, item.summary)
    assert expected.label == "positive"
    stored = news.item(item)
    assert stored["status"] == "analyzed" and stored["sentiment_label"] == "positive"
    assert stored["sentiment_score"] == Decimal(str(round(expected.score, 4)))
    assert stored["analyzed_at"] == stored["status_changed_at"] and stored["analyzed_at"].endswith("Z")
    assert stored["analysis_trace_id"] == invocation.trace_header.root  # the dashboard links the item to it
    assert result == {"items": [{"item_id": item.item_id, "duplicate": False, "label": "positive",
                                 "score": expected.score, "fanout_failed": False, "publish_failed": False}]}

    buckets = news.buckets("NVDA")
    assert set(buckets) == {f"NVDA#{r}" for r in ("1m", "5m", "1h", "24h")}
    starts = {key: row["bucket_start"] for key, row in buckets.items()}
    assert starts == {"NVDA#1m": "2026-01-15T09:47:00.000Z", "NVDA#5m": "2026-01-15T09:45:00.000Z",
                      "NVDA#1h": "2026-01-15T09:00:00.000Z", "NVDA#24h": "2026-01-15T00:00:00.000Z"}
    for resolution in Resolution:
        row = buckets[f"NVDA#{resolution}"]
        assert (row["count"], row["positive"]) == (1, 1) and "negative" not in row
        assert row["score_sum"] == Decimal(str(round(expected.score, 4)))
        start = dt.datetime.fromisoformat(row["bucket_start"].replace("Z", "+00:00"))
        assert row["expires_at"] == int((start + resolution.retention).timestamp())

    [scored] = news.published("sentiment_scored")
    assert json.loads(scored.message) == {
        "item_id": item.item_id, "published_at": item.published_at, "ticker": "NVDA", "headline": item.headline,
        "label": "positive", "score": expected.score, "analyzed_at": stored["analyzed_at"]}
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=8)
    assert document_problems(tree) == [] and silent_failures(tree) == []
    operations = [n.document["aws"].get("operation") for n in tree.nodes() if n.document.get("namespace") == "aws"]
    assert {"GetItem", "UpdateItem", "TransactWriteItems", "Publish"} <= set(operations), render(tree)


def test_a_second_delivery_of_the_same_message_counts_nothing_twice(news: NewsHarness) -> None:
    item = news.store_item("Tesla faces lawsuit over driver assistance marketing", ticker="TSLA")
    event = news.sns_event(item.message())
    first, _ = news.analyse(event)
    second, invocation = news.analyse(event)

    assert first["items"][0]["duplicate"] is False
    assert second == {"items": [{"item_id": item.item_id, "duplicate": True, "label": None, "score": None,
                                 "fanout_failed": False, "publish_failed": False}]}
    assert all(row["count"] == 1 for row in news.buckets("TSLA").values())
    assert len(news.published("sentiment_scored")) == 1
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=4)
    assert tree.find("## lambdas.analysis.service.analyse")[0].document["annotations"]["duplicate_delivery"] is True


@pytest.mark.req("FR-007", "FR-081")
def test_a_score_bumps_the_change_marker_once_and_a_redelivery_does_not(news: NewsHarness) -> None:
    """The SSE streams query the index when the marker moves (lambdas/sse_streaming/feed.py)."""
    def marker() -> dict[str, Any]:
        found: dict[str, Any] = news.news_table.get_item(Key=FEED_MARKER_KEY, ConsistentRead=True).get("Item", {})
        return found

    before = int(marker().get("feed_version", 0))
    item = news.store_item("Apple unveils a new product line to strong reviews", ticker="AAPL")
    event = news.sns_event(item.message())
    news.analyse(event)
    after = marker()
    assert after["feed_version"] == before + 1
    assert after["changed_at"] == news.item(item)["status_changed_at"]  # when the announced item settles
    news.analyse(event)  # a redelivery scores nothing: nothing new to announce
    assert marker()["feed_version"] == before + 1
    assert "status" not in after and "ticker" not in after and "sentiment_label" not in after  # in no index


MALFORMED = {
    "message is not JSON": lambda h, item: h.sns_event("item_id=abc"),
    "item_id missing": lambda h, item: h.sns_event({"published_at": item.published_at}),
    "item_id not a dedup hash": lambda h, item: h.sns_event({**item.message(), "item_id": "../../etc"}),
    "published_at not ISO with ms": lambda h, item: h.sns_event({**item.message(), "published_at": "yesterday"}),
    "unknown field": lambda h, item: h.sns_event({**item.message(), "status": "analyzed"}),
    "not an SNS event": lambda h, item: {"detail-type": "Scheduled Event", "detail": item.message()},
    "no records": lambda h, item: {"Records": []},
    "two records, the second malformed": lambda h, item: {"Records": [
        h.sns_event(item.message())["Records"][0], h.sns_event({"item_id": 1})["Records"][0]]},
}


@pytest.mark.req("FR-018", "FR-005")
@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_message_raises_a_typed_error_faults_the_trace_and_writes_nothing(
    news: NewsHarness, case: str
) -> None:
    item = news.store_item("Microsoft schedules its annual developer conference", ticker="MSFT")
    errors_before = metric_samples("AnalysisErrors", function_name("analysis"))
    upstream = TraceHeader.new_root()
    with pytest.raises((ValidationError, MalformedSnsEventError)) as raised:
        news.analyse(MALFORMED[case](news, item), upstream=upstream)

    assert news.item(item)["status"] == "pending"  # not even a valid first record was processed
    assert news.buckets("MSFT") == {} and news.published("sentiment_scored") == []
    assert metric_samples("AnalysisErrors", function_name("analysis")) == errors_before + 1
    tree = news.pipeline.tree(upstream.root, expect_at_least=4)
    handler = tree.find("## lambda_handler")[0].document
    assert handler["fault"] is True
    assert handler["cause"]["exceptions"][0]["type"] == type(raised.value).__name__
    assert handler["annotations"]["analysis_error"] == type(raised.value).__name__
    function = next(n.document for n in tree.nodes() if n.document.get("origin") == "AWS::Lambda::Function")
    assert function["fault"] is True
    writes = {"PutItem", "UpdateItem", "TransactWriteItems", "Publish"}
    assert not [n for n in tree.nodes() if n.document.get("aws", {}).get("operation") in writes]


@pytest.mark.req("FR-005", "FR-018")
def test_a_message_for_an_unknown_item_raises_and_writes_nothing(news: NewsHarness) -> None:
    errors_before = metric_samples("AnalysisErrors", function_name("analysis"))
    message = {"item_id": "0" * 32, "published_at": iso_ms(PUBLISHED)}
    with pytest.raises(ItemNotFoundError):
        news.analyse(news.sns_event(message))
    assert news.items() == [] and news.published("sentiment_scored") == []
    assert metric_samples("AnalysisErrors", function_name("analysis")) == errors_before + 1
    assert [[{"Name": "FunctionName", "Value": function_name("analysis")}]] == metric_dimensions("AnalysisErrors")


def _conflict() -> dict[str, Any]:
    return {"CancellationReasons": [{"Code": "TransactionConflict", "Message": "conflict"}] * 4}


@pytest.mark.req("FR-002", "FR-005", "FR-043", "SC-004", "SC-019", "SC-002")
def test_fanout_that_keeps_failing_is_retried_a_bounded_number_of_times_then_recorded(news: NewsHarness) -> None:
    item = news.store_item("Apple suppliers warn of weaker demand for accessories", ticker="AAPL")
    failures_before = metric_samples("TimeseriesFanoutPartialFailure", function_name("analysis"))
    with aws_fault(news.dynamodb, "TransactWriteItems", "TransactionCanceledException",
                   response=_conflict()) as failed:
        result, invocation = news.analyse(news.sns_event(item.message()))

    assert len(failed) == FANOUT_ATTEMPTS
    assert result["items"][0]["fanout_failed"] is True
    assert news.item(item)["status"] == "analyzed"  # the run went on: scored, stored, handed on
    assert len(news.published("sentiment_scored")) == 1
    assert news.buckets("AAPL") == {}
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=10)
    [failure] = silent_failures(tree)
    assert failure["name"] == "timeseries_fanout_batch_write"
    assert failure["cause"]["exceptions"][0]["type"] == "FanoutFailedError"
    assert failure["annotations"]["fanout_attempts"] == FANOUT_ATTEMPTS
    assert not tree.find("## lambda_handler")[0].document.get("fault")
    assert metric_samples("TimeseriesFanoutPartialFailure", function_name("analysis")) == failures_before + 1
    assert [[{"Name": "FunctionName", "Value": function_name("analysis")}]] == metric_dimensions(
        "TimeseriesFanoutPartialFailure")


@pytest.mark.req("FR-002")
def test_a_transient_fanout_conflict_is_retried_and_counts_once(news: NewsHarness) -> None:
    item = news.store_item("Tesla delivers more cars than expected and beats estimates", ticker="TSLA")
    failures_before = metric_samples("TimeseriesFanoutPartialFailure", function_name("analysis"))
    with aws_fault(news.dynamodb, "TransactWriteItems", "TransactionCanceledException", times=1,
                   response=_conflict()) as failed:
        result, invocation = news.analyse(news.sns_event(item.message()))
    assert len(failed) == 1 and result["items"][0]["fanout_failed"] is False
    assert all(row["count"] == 1 for row in news.buckets("TSLA").values()) and len(news.buckets("TSLA")) == 4
    assert metric_samples("TimeseriesFanoutPartialFailure", function_name("analysis")) == failures_before
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=10)
    assert silent_failures(tree) == []


@pytest.mark.req("FR-002", "FR-005")
def test_a_non_retryable_fanout_error_is_not_retried(news: NewsHarness) -> None:
    item = news.store_item("Regulators open an antitrust probe into Apple's app store fees", ticker="AAPL")
    with aws_fault(news.dynamodb, "TransactWriteItems", "ValidationException") as failed:
        result, _ = news.analyse(news.sns_event(item.message()))
    assert len(failed) == 1 and result["items"][0]["fanout_failed"] is True


@pytest.mark.req("FR-002", "FR-043", "SC-019")
def test_a_failed_hand_off_to_notification_is_recorded_and_the_item_stays_analyzed(news: NewsHarness) -> None:
    item = news.store_item("Tesla recalls vehicles over a faulty seat belt warning", ticker="TSLA")
    failures_before = metric_samples("DownstreamNotificationFailure", function_name("analysis"))
    with aws_fault(news.sns, "Publish", "ThrottledException", status=429):
        result, invocation = news.analyse(news.sns_event(item.message()))
    assert result["items"][0]["publish_failed"] is True
    assert news.item(item)["status"] == "analyzed" and len(news.buckets("TSLA")) == 4
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=10)
    [failure] = silent_failures(tree)
    assert failure["name"] == "downstream_sns_publish" and failure["throttle"] is True
    assert metric_samples("DownstreamNotificationFailure", function_name("analysis")) == failures_before + 1
