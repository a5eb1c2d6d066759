"""The ingestion Lambda against the fake Tiingo/Finnhub sources, moto and the local trace pipeline."""

from __future__ import annotations

import json

import pytest

from devstack.news_sources import FailureMode
from devstack.trace_reader import document_problems, render
from lib.news.model import item_id
from tests.fixtures.news_pipeline import (  # noqa: F401  (fixtures)
    NewsHarness,
    ancestors,
    metric_dimensions,
    metric_samples,
    metric_sum,
    news_fixture,
    news_server_fixture,
    silent_failures,
)


@pytest.mark.req("FR-029", "SC-003", "FR-025", "FR-037")
def test_one_run_stores_new_items_pending_and_publishes_each_once(news: NewsHarness) -> None:
    heartbeat_before = metric_samples("NewItemsIngested", "ingestion")
    result, invocation = news.ingest()

    items = news.items()
    # 7 Tiingo articles (one tagged only with an untracked ticker) + 6 Finnhub, one story in both.
    assert result["fetched"] == {"tiingo": 6, "finnhub": 6}
    assert result["new_items"] == len(items) == 11 and result["duplicates"] == 1
    assert {item["status"] for item in items} == {"pending"}
    assert {item["source"] for item in items} == {"tiingo", "finnhub"}
    for item in items:
        assert item["item_id"] == item_id(item["headline"], __import__("datetime").date.fromisoformat(
            item["published_at"][:10]))
        assert item["published_at"].endswith("Z") and len(item["published_at"]) == 24
    published = news.published()
    assert sorted(json.loads(p.message)["item_id"] for p in published) == sorted(i["item_id"] for i in items)
    assert all(set(json.loads(p.message)) == {"item_id", "published_at"} for p in published)
    assert metric_samples("NewItemsIngested", "ingestion") == heartbeat_before + 1

    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=30)
    assert document_problems(tree) == [], render(tree)
    assert silent_failures(tree) == []


@pytest.mark.req("FR-025", "FR-037", "FR-029")
def test_each_sources_http_call_hangs_under_its_fetch_in_the_worker_thread(news: NewsHarness) -> None:
    _, invocation = news.ingest()
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=30)
    http = [n for n in tree.nodes() if n.document.get("namespace") == "remote"]
    urls = {n.document["http"]["request"]["url"].split("?")[0]: n for n in http}
    tiingo = [n for u, n in urls.items() if u.endswith("/tiingo/news")]
    finnhub = [n for n in http if "/api/v1/company-news" in n.document["http"]["request"]["url"]]
    assert len(tiingo) == 1 and len(finnhub) == 4  # one call for all tickers; one per ticker
    for node in [*tiingo, *finnhub]:
        chain = ancestors(tree, node)
        assert chain[0] == "## lambdas.ingestion.service.fetch_source", chain
        assert chain[1] == "## lambdas.ingestion.service.fetch_all", chain
        assert "## lambda_handler" in chain
        assert "token" not in node.document["http"]["request"]["url"].lower()  # keys travel in headers
    fetches = tree.find("## lambdas.ingestion.service.fetch_source")
    assert sorted(f.document["annotations"]["news_source"] for f in fetches) == ["finnhub", "tiingo"]
    assert not any(n.document.get("fault") or n.document.get("error") for n in http)


@pytest.mark.req("FR-002", "FR-005", "FR-043", "SC-004", "SC-019")
def test_a_failing_source_is_aggregated_and_the_other_sources_news_still_arrives(news: NewsHarness) -> None:
    errors_before = metric_samples("ParallelFetcherErrors", "ingestion")
    news.server.fail("tiingo", FailureMode.SERVER_ERROR)
    result, invocation = news.ingest()

    assert result["failed_sources"] == {"tiingo": "SourceHTTPError"}
    assert result["fetched"] == {"finnhub": 6}
    assert {item["source"] for item in news.items()} == {"finnhub"}
    assert len(news.items()) == 6
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=20)
    failed = silent_failures(tree)
    assert [f["name"] for f in failed] == ["parallel_fetcher_aggregation"], render(tree)
    assert failed[0]["cause"]["exceptions"][0]["type"] == "SourceFetchErrors"
    assert "tiingo" in failed[0]["cause"]["exceptions"][0]["message"]
    assert not tree.find("## lambda_handler")[0].document.get("fault")
    assert metric_samples("ParallelFetcherErrors", "ingestion") == errors_before + 1
    assert [{"Name": "FunctionName", "Value": news.invoke.env("ingestion") and
             "sentiment-analyzer-local-ingestion"}] in metric_dimensions("ParallelFetcherErrors")
