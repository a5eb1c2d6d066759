"""Ingestion's dedup against moto: what is skipped, what is stored, and how many DynamoDB calls it costs.

The dedup key (`item_id`, normalised headline + publish date) is the `news` table's hash key only:
the same story reported at another minute has another `published_at`, so no BatchGetItem can say
whether it is stored. A run finds what is stored with one `ticker-index` Query per ticker; the
stories that index does not show get the consistent Query on `item_id` and the conditional put.
Calls are counted with botocore event hooks on the Lambda's own client, never by patching our code.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from devstack.fakes.news_sources import DEFAULT_TICKERS
from devstack.xray.trace_reader import Node, ancestors, render, silent_failures
from lib.news.model import iso_ms, item_id
from tests.fixtures.news_pipeline import (  # noqa: F401  (fixtures)
    NewsHarness,
    _request_body,
    news_fixture,
    news_server_fixture,
)

STORE = "## lambdas.ingestion.service.store_new_items"
TICKERS = len(DEFAULT_TICKERS)
FIXTURE_STORIES = 11  # 12 articles of the fake sources' fixtures, one story reported by both


@contextmanager
def news_table_calls(news: NewsHarness) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """(operation, request body) of every call the Lambda's DynamoDB client makes to the `news` table."""
    calls: list[tuple[str, dict[str, Any]]] = []
    table = news.resources.tables["news"]
    hook_id = f"count-{uuid.uuid4().hex}"

    def hook(params: dict[str, Any], model: Any, **_: Any) -> None:
        body = _request_body(params)
        if body.get("TableName") == table or table in body.get("RequestItems", {}):
            calls.append((model.name, body))

    news.dynamodb.meta.events.register("before-call.dynamodb", hook, unique_id=hook_id)
    try:
        yield calls
    finally:
        news.dynamodb.meta.events.unregister("before-call.dynamodb", unique_id=hook_id)


def dedup_calls(calls: list[tuple[str, dict[str, Any]]]) -> dict[str, int]:
    """The dedup's calls by kind (self-healing's `status-index` Query is not one of them)."""
    kinds: dict[str, int] = {}
    for operation, body in calls:
        if body.get("IndexName") == "status-index":
            continue
        kind = f"{operation}:{body['IndexName']}" if "IndexName" in body else operation
        kinds[kind] = kinds.get(kind, 0) + 1
    return kinds


def dynamodb_children(node: Node) -> list[str]:
    return [str(child.document.get("aws", {}).get("operation")) for child in node.children
            if child.document.get("namespace") == "aws" and child.document.get("name") == "dynamodb"]


@pytest.mark.req("FR-029", "FR-030", "SC-003")
def test_a_run_of_known_stories_reads_once_per_ticker_and_writes_nothing(news: NewsHarness) -> None:
    with news_table_calls(news) as first:
        result, _ = news.ingest()
    assert (result["new_items"], result["duplicates"]) == (FIXTURE_STORIES, 1)
    # an empty table: one index Query per ticker, then per new story its Query on item_id and its put
    assert dedup_calls(first) == {"Query:ticker-index": TICKERS, "Query": FIXTURE_STORIES,
                                  "PutItem": FIXTURE_STORIES}
    stored = {item["item_id"]: item for item in news.items()}
    news.published()

    with news_table_calls(news) as second:
        result, invocation = news.ingest()
    assert (result["new_items"], result["duplicates"], result["published"]) == (0, FIXTURE_STORIES + 1, 0)
    assert dedup_calls(second) == {"Query:ticker-index": TICKERS}  # not one call per article
    for _, body in second:
        if body.get("IndexName") == "ticker-index":
            assert body["ProjectionExpression"] == "item_id"
    assert {item["item_id"]: item for item in news.items()} == stored and news.published() == []

    # each of those calls is exactly one auto-instrumented subsegment under the dedup's own
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=20)
    [store] = tree.find(STORE)
    assert dynamodb_children(store) == ["Query"] * TICKERS, render(tree)
    assert silent_failures(tree) == []


@pytest.mark.req("FR-029", "SC-003")
def test_only_the_new_story_of_a_busy_run_costs_calls_of_its_own_and_is_stored_and_published_once(
    news: NewsHarness,
) -> None:
    news.ingest()
    news.published()
    for index in range(40):  # a busy hour: 40 more stories spread over the tickers, all stored by one run
        ticker = DEFAULT_TICKERS[index % TICKERS][0]
        news.server.publish("finnhub", ticker, f"{ticker} supplier note number {index} lifts outlook")
    with news_table_calls(news) as calls:
        result, _ = news.ingest()
    assert result["new_items"] == 40 and len(news.published()) == 40
    assert dedup_calls(calls) == {"Query:ticker-index": TICKERS, "Query": 40, "PutItem": 40}

    news.server.publish("tiingo", "NVDA", "Nvidia opens a new design centre", "Hiring starts next month.")
    with news_table_calls(news) as calls:
        result, invocation = news.ingest()
    assert (result["new_items"], result["duplicates"], result["published"]) == (1, FIXTURE_STORIES + 41, 1)
    assert dedup_calls(calls) == {"Query:ticker-index": TICKERS, "Query": 1, "PutItem": 1}
    [publication] = news.published()
    new_id = item_id("nvidia opens a new design centre", dt.datetime.now(dt.UTC))
    assert json.loads(publication.message)["item_id"] == new_id
    [stored] = [item for item in news.items() if item["item_id"] == new_id]
    assert (stored["ticker"], stored["status"], stored["source"]) == ("NVDA", "pending", "tiingo")
    assert len(news.items()) == FIXTURE_STORIES + 41

    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=20)
    [store] = tree.find(STORE)
    assert dynamodb_children(store) == ["Query"] * TICKERS + ["Query", "PutItem"], render(tree)


@pytest.mark.req("FR-029")
def test_a_story_stored_under_another_ticker_at_another_minute_is_still_a_duplicate(news: NewsHarness) -> None:
    """The index of this run's tickers cannot show it: the consistent Query on item_id still does."""
    today = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    earlier = news.store_item("Chipmakers rally on export news", ticker="INTC", source="tiingo",
                              published=today + dt.timedelta(minutes=1))
    news.server.publish("finnhub", "MSFT", "Chipmakers rally on export news!",
                        published=today + dt.timedelta(minutes=2))

    with news_table_calls(news) as calls:
        result, _ = news.ingest()
    assert (result["new_items"], result["duplicates"]) == (FIXTURE_STORIES, 2)
    assert dedup_calls(calls) == {"Query:ticker-index": TICKERS, "Query": FIXTURE_STORIES + 1,
                                  "PutItem": FIXTURE_STORIES}
    same_story = [item for item in news.items() if item["item_id"] == earlier.item_id]
    assert [(item["ticker"], item["published_at"]) for item in same_story] == [("INTC", earlier.published_at)]
    assert earlier.item_id not in {json.loads(p.message)["item_id"] for p in news.published()}


@pytest.mark.req("FR-005", "FR-029")
def test_the_conditional_put_still_decides_a_race_lost_between_the_reads_and_the_write(news: NewsHarness) -> None:
    """Another writer stores the story after this run's reads: the conditional put refuses the second
    copy, the story counts as a duplicate and is not published; the refused put's subsegment says why."""
    now = dt.datetime.now(dt.UTC)
    published = now - dt.timedelta(minutes=2)
    news.server.publish("tiingo", "TSLA", "Tesla recalls a batch of chargers", published=published)
    key = {"item_id": item_id("tesla recalls a batch of chargers", published), "published_at": iso_ms(published)}
    other_writer = boto3.client("dynamodb")  # not the Lambda's client: the hook below does not see it
    hook_id = f"race-{uuid.uuid4().hex}"

    def concurrent_write(params: dict[str, Any], **_: Any) -> None:
        item = _request_body(params).get("Item", {})
        if item.get("item_id") == {"S": key["item_id"]}:
            other_writer.put_item(TableName=news.resources.tables["news"], Item={
                **item, "source": {"S": "other-run"}})

    news.dynamodb.meta.events.register("before-call.dynamodb.PutItem", concurrent_write, unique_id=hook_id)
    try:
        result, invocation = news.ingest()
    finally:
        news.dynamodb.meta.events.unregister("before-call.dynamodb.PutItem", unique_id=hook_id)

    assert (result["new_items"], result["duplicates"]) == (FIXTURE_STORIES, 2)
    [stored] = [item for item in news.items() if item["item_id"] == key["item_id"]]
    assert stored["source"] == "other-run"
    assert key["item_id"] not in {json.loads(p.message)["item_id"] for p in news.published()}

    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=20)
    refused = [node for node in tree.find("dynamodb")
               if node.document.get("aws", {}).get("operation") == "PutItem" and node.document.get("error")]
    assert len(refused) == 1, render(tree)
    assert ancestors(tree, refused[0])[0] == STORE
    assert refused[0].document["cause"]["exceptions"][0]["type"] == "ConditionalCheckFailedException"
    assert not tree.find("## lambda_handler")[0].document.get("fault")
