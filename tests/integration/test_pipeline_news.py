"""Ingestion → SNS → analysis, end to end: one trace across the hop (FR-013, SC-008), nothing lost."""

from __future__ import annotations

import json

import pytest

from devstack.fakes.news_sources import FailureMode
from devstack.xray.trace_reader import TraceTree, ancestors, document_problems, render, silent_failures
from tests.fixtures.news_pipeline import (  # noqa: F401  (fixtures)
    NewsHarness,
    aws_calls,
    aws_fault,
    news_fixture,
    news_server_fixture,
)


def _origin(tree: TraceTree, origin: str, name_suffix: str = "") -> list[dict[str, object]]:
    return [n.document for n in tree.nodes()
            if n.document.get("origin") == origin and str(n.document.get("name", "")).endswith(name_suffix)]


@pytest.mark.req("FR-013", "SC-008", "SC-003", "FR-029", "SC-010")
def test_ingestion_and_analysis_share_one_trace_across_sns_without_message_attributes(news: NewsHarness) -> None:
    with aws_calls(news.sns, "Publish") as publish_requests:
        _, ingestion = news.ingest()
        publications = news.published()
        deliveries = news.deliver(publications)

    root = ingestion.trace_header.root
    assert len(deliveries) == 11
    assert {invocation.trace_header.root for _, invocation in deliveries} == {root}
    assert all(result["items"][0]["duplicate"] is False for result, _ in deliveries)
    assert {item["status"] for item in news.items()} == {"analyzed"}
    # The trace header rode on the Publish request itself (the X-Ray patch), not in the message.
    news_items_arn = news.resources.topics["news_items"]
    to_analysis = [body for body in publish_requests if body["TopicArn"] == news_items_arn]
    assert len(to_analysis) == 11
    assert not any(key.startswith("MessageAttributes") for body in to_analysis for key in body)
    assert all(p.trace_header is not None and p.trace_header.root == root for p in publications)

    # 2 ingestion facades + its subsegments, then per item: SNS segment, 2 analysis facades, subsegments.
    tree = news.pipeline.tree(root, expect_at_least=11 * 12)
    assert document_problems(tree) == [], render(tree)
    [ingestion_function] = _origin(tree, "AWS::Lambda::Function", "-ingestion")
    analysis_services = _origin(tree, "AWS::Lambda", "-analysis")
    sns_segments = _origin(tree, "AWS::SNS")
    assert len(analysis_services) == len(sns_segments) == 11
    by_id = {node.id: node.document for node in tree.nodes()}
    for service in analysis_services:
        sns_segment = by_id[str(service["parent_id"])]
        assert sns_segment["origin"] == "AWS::SNS" and sns_segment["name"] == news_items_arn.rsplit(":", 1)[-1]
        publish = by_id[str(sns_segment["parent_id"])]
        assert publish["namespace"] == "aws" and publish["aws"]["operation"] == "Publish"
    # The ingestion's own picture: HTTP to each source, DynamoDB and SNS, all under its function segment.
    ingestion_nodes = [n for n in tree.nodes() if ingestion_function["name"] in ancestors(tree, n)]
    urls = [n.document["http"]["request"]["url"] for n in ingestion_nodes if n.document.get("namespace") == "remote"]
    assert any("/tiingo/news" in url for url in urls) and any("/company-news" in url for url in urls)
    operations = {n.document["aws"]["operation"] for n in ingestion_nodes if n.document.get("namespace") == "aws"}
    assert {"Query", "PutItem", "Publish", "PutMetricData"} <= operations  # the secret may be cached (5 min)
    handlers = {str(h.document["parent_id"]) for h in tree.find("## lambda_handler")}
    # Each warm analysis invocation hangs under its own function segment, though all share the Root.
    assert {invocation.function_segment_id for _, invocation in deliveries} <= handlers
    analysis_operations = {n.document["aws"]["operation"] for n in tree.nodes()
                           if n.document.get("namespace") == "aws" and "-analysis" in " ".join(ancestors(tree, n))}
    assert {"GetItem", "UpdateItem", "TransactWriteItems", "Publish"} <= analysis_operations
    assert silent_failures(tree) == []


@pytest.mark.req("FR-002", "SC-004", "FR-013")
def test_an_item_whose_publish_failed_stays_pending_and_self_healing_delivers_it(news: NewsHarness) -> None:
    with aws_fault(news.sns, "Publish", "InternalError", 500, times=3):
        first, _ = news.ingest()
    assert first["publish_failures"] == 3 and first["published"] == 8
    published = news.published()
    news.deliver(published)
    pending = [item for item in news.items() if item["status"] == "pending"]
    assert len(pending) == 3

    news.backdate_pending(minutes=11)  # SELF_HEAL_AFTER_MINUTES is 10
    healed, healing = news.ingest()
    assert (healed["new_items"], healed["self_healed"]) == (0, 3)
    republished = news.published()
    assert sorted(json.loads(p.message)["item_id"] for p in republished) == sorted(i["item_id"] for i in pending)
    for result, invocation in news.deliver(republished):
        assert invocation.trace_header.root == healing.trace_header.root  # the healing run's trace goes on
        assert result["items"][0]["duplicate"] is False
    assert {item["status"] for item in news.items()} == {"analyzed"}
    assert sum(row["count"] for key, row in news.buckets("AAPL").items() if key.endswith("#24h")) == sum(
        1 for item in news.items() if item["ticker"] == "AAPL")


@pytest.mark.req("FR-013")
def test_a_redelivered_message_after_self_healing_is_not_counted_twice(news: NewsHarness) -> None:
    """Self-healing may re-publish an item whose first message is merely slow: analysis must not care."""
    news.ingest()
    original = news.published()
    news.backdate_pending(minutes=11)
    news.ingest()
    again = news.published()
    assert len(again) == len(original) == 11
    news.deliver(original)
    results = [result for result, _ in news.deliver(again)]
    assert all(result["items"][0]["duplicate"] for result in results)
    counts = {key: row["count"] for ticker in ("AAPL", "MSFT", "TSLA", "NVDA")
              for key, row in news.buckets(ticker).items() if key.endswith("#24h")}
    assert sum(counts.values()) == 11


@pytest.mark.req("FR-002", "SC-004")
def test_a_source_outage_leaves_the_other_sources_news_flowing_to_analysis(news: NewsHarness) -> None:
    news.server.fail("finnhub", FailureMode.SERVER_ERROR)
    _, ingestion = news.ingest()
    deliveries = news.deliver(news.published())
    assert len(deliveries) == 6
    assert {item["source"] for item in news.items()} == {"tiingo"}
    assert {item["status"] for item in news.items()} == {"analyzed"}
    tree = news.pipeline.tree(ingestion.trace_header.root, expect_at_least=6 * 12)
    assert [f["name"] for f in silent_failures(tree)] == ["parallel_fetcher_aggregation"]
