"""The ingestion Lambda against the fake Tiingo/Finnhub sources, moto and the local trace pipeline."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import boto3
import pytest
from aws_lambda_powertools.utilities import parameters

from devstack.aws.cloudwatch import metric_dimensions, metric_samples, metric_sum
from devstack.aws.resources import Resources
from devstack.fakes.news_sources import FailureMode
from devstack.xray.trace_reader import ancestors, document_problems, render, silent_failures
from lib.config import ConfigurationError
from lib.metrics import cloudwatch_client
from lib.news.model import item_id
from lib.tracing.header import TraceHeader
from tests.fixtures.news_pipeline import (  # noqa: F401  (fixtures)
    NewsHarness,
    aws_calls,
    aws_fault,
    function_name,
    news_fixture,
    news_server_fixture,
)


@pytest.mark.req("FR-029", "SC-003")
def test_one_run_stores_new_items_pending_and_publishes_each_once(news: NewsHarness) -> None:
    heartbeat_before = metric_samples("NewItemsIngested", function_name("ingestion"))
    result, invocation = news.ingest()

    items = news.items()
    # 7 Tiingo articles (one tagged only with an untracked ticker) + 6 Finnhub, one story in both.
    assert result["fetched"] == {"tiingo": 6, "finnhub": 6}
    assert result["new_items"] == len(items) == 11 and result["duplicates"] == 1
    assert {item["status"] for item in items} == {"pending"}
    assert {item["source"] for item in items} == {"tiingo", "finnhub"}
    for item in items:
        assert item["item_id"] == item_id(item["headline"], dt.date.fromisoformat(item["published_at"][:10]))
        assert item["published_at"].endswith("Z") and len(item["published_at"]) == 24
    published = news.published()
    assert sorted(json.loads(p.message)["item_id"] for p in published) == sorted(i["item_id"] for i in items)
    assert all(set(json.loads(p.message)) == {"item_id", "published_at"} for p in published)
    assert metric_samples("NewItemsIngested", function_name("ingestion")) == heartbeat_before + 1

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
    errors_before = metric_samples("ParallelFetcherErrors", function_name("ingestion"))
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
    assert metric_samples("ParallelFetcherErrors", function_name("ingestion")) == errors_before + 1
    assert [{"Name": "FunctionName", "Value": function_name("ingestion")}] in metric_dimensions(
        "ParallelFetcherErrors")


def _state_query_for(pk: str) -> Any:
    return lambda body: body.get("TableName", "").endswith("-state") and f'"{pk}"' in json.dumps(
        body.get("ExpressionAttributeValues", {}))


def _state_put_of(pk: str) -> Any:
    return lambda body: body.get("TableName", "").endswith("-state") and body.get("Item", {}).get("pk") == {"S": pk}


def _seed_half_failed_tiingo_breaker(news: NewsHarness) -> None:
    """A closed breaker with one failure: the next successful run resets it, so it must be saved."""
    news.state_table.put_item(Item={"pk": "breaker", "sk": "tiingo", "state": "closed", "failures": 1,
                                    "opened_at": None, "updated_at": "2026-01-15T08:00:00.000Z"})


# path name → (metric, client attribute of the harness, operation, request predicate, error code, HTTP status)
SILENT_PATHS: dict[str, tuple[str, str, str, Any, str, int]] = {
    "circuit_breaker_load": ("CircuitBreakerPersistenceFailure", "dynamodb", "Query", _state_query_for("breaker"),
                             "ProvisionedThroughputExceededException", 400),
    "circuit_breaker_save": ("CircuitBreakerPersistenceFailure", "dynamodb", "PutItem", _state_put_of("breaker"),
                             "InternalServerError", 500),
    "audit_trail_write": ("AuditEventPersistenceFailure", "dynamodb", "PutItem", _state_put_of("audit#ingestion"),
                          "ResourceNotFoundException", 400),
    "downstream_sns_publish": ("DownstreamNotificationFailure", "sns", "Publish", lambda body: True,
                               "InternalError", 500),
    "self_healing_item_fetch": ("SelfHealingItemFetchFailure", "dynamodb", "Query",
                                lambda body: body.get("IndexName") == "status-index", "InternalServerError", 500),
}


@pytest.mark.req("FR-002", "FR-005", "FR-043", "SC-004", "SC-019", "SC-002")
@pytest.mark.parametrize("path", list(SILENT_PATHS))
def test_each_ingestion_silent_path_records_one_error_subsegment_one_metric_and_the_run_goes_on(
    news: NewsHarness, path: str
) -> None:
    metric, client, operation, when, code, status = SILENT_PATHS[path]
    if path == "circuit_breaker_save":
        _seed_half_failed_tiingo_breaker(news)
    before = metric_samples(metric, function_name("ingestion"))
    with aws_fault(getattr(news, client), operation, code, status, when=when) as failed:
        result, invocation = news.ingest()

    assert failed, f"the fault for {path} was never hit"
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=30)
    errors = silent_failures(tree)
    assert [e["name"] for e in errors] == [path], render(tree)
    exception = errors[0]["cause"]["exceptions"][0]
    assert exception["type"] in {code, "SnsPublishError"} and exception["message"]
    assert errors[0]["annotations"]["failure_kind"] == ("fault" if status >= 500 or path == "downstream_sns_publish"
                                                          else "throttle" if "Throughput" in code else "error")
    assert not tree.find("## lambda_handler")[0].document.get("fault")
    assert metric_samples(metric, function_name("ingestion")) == before + 1
    assert [{"Name": "FunctionName", "Value": function_name("ingestion")}] in metric_dimensions(metric)
    assert all(dims == [{"Name": "FunctionName", "Value": dims[0]["Value"]}] for dims in metric_dimensions(metric))

    # ... and the run went on as designed
    items = news.items()
    assert result["new_items"] == len(items) == 11
    if path == "downstream_sns_publish":
        assert result["published"] == 0 and result["publish_failures"] == 11
        assert {item["status"] for item in items} == {"pending"} and news.published() == []
    else:
        assert result["published"] == 11 and len(news.published()) == 11
    assert (news.audits() == []) == (path == "audit_trail_write")
    if path == "circuit_breaker_save":
        assert news.breaker("tiingo")["failures"] == 1  # the lost save: the reset waits for the next run


@pytest.mark.req("FR-002", "FR-043", "SC-019", "FR-056")
def test_silent_path_metrics_are_emitted_even_when_the_trace_is_not_sampled(news: NewsHarness) -> None:
    before = metric_samples("AuditEventPersistenceFailure", function_name("ingestion"))
    upstream = TraceHeader.new_root().with_parent("53995c3f42cd8ad8", sampled=False)
    with aws_fault(news.dynamodb, "PutItem", "ResourceNotFoundException", when=_state_put_of("audit#ingestion")):
        _, invocation = news.ingest(upstream=upstream)
    assert metric_samples("AuditEventPersistenceFailure", function_name("ingestion")) == before + 1
    news.pipeline.settle()
    assert news.pipeline.documents(invocation.trace_header.root) == []


@pytest.mark.req("FR-002")
def test_a_failing_source_opens_its_breaker_and_is_tried_again_after_the_cooldown(news: NewsHarness) -> None:
    news.server.fail("tiingo", FailureMode.RATE_LIMITED)
    for run in range(1, 4):
        result, _ = news.ingest()
        assert result["failed_sources"] == {"tiingo": "SourceHTTPError"}
        assert news.breaker("tiingo")["failures"] == run
    assert news.breaker("tiingo")["state"] == "open" and news.breaker("tiingo")["opened_at"]
    assert {item["source"] for item in news.items()} == {"finnhub"}

    calls = news.server.requests["tiingo"]
    result, invocation = news.ingest()  # open: not called at all
    assert news.server.requests["tiingo"] == calls
    assert result["skipped_sources"] == ["tiingo"] and result["failed_sources"] == {}
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=10)
    assert [f.document["annotations"]["news_source"] for f in tree.find(
        "## lambdas.ingestion.service.fetch_source")] == ["finnhub"]

    result, _ = news.ingest(BREAKER_COOLDOWN_S="0")  # cooldown over: one trial, which fails: open again
    assert news.server.requests["tiingo"] == calls + 1 and news.breaker("tiingo")["state"] == "open"

    news.server.recover("tiingo")
    result, _ = news.ingest(BREAKER_COOLDOWN_S="0")  # the next trial succeeds: closed, news flows again
    breaker = news.breaker("tiingo")
    assert (breaker["state"], breaker["failures"], breaker["opened_at"]) == ("closed", 0, None)
    assert result["fetched"]["tiingo"] == 6 and result["new_items"] == 5  # the shared story came from finnhub
    assert {item["source"] for item in news.items()} == {"tiingo", "finnhub"}


def test_duplicates_never_produce_a_second_item_and_only_new_headlines_are_published(news: NewsHarness) -> None:
    news.ingest()
    first = {item["item_id"]: item for item in news.items()}
    news.published()
    shared = [i for i in first.values() if i["headline"].lower().startswith("apple lifts dividend")]
    assert len(shared) == 1  # same story from both sources, minutes apart: one item

    result, _ = news.ingest()
    assert (result["new_items"], result["duplicates"]) == (0, 12)
    assert {item["item_id"]: item for item in news.items()} == first and news.published() == []

    news.server.publish("finnhub", "MSFT", "Microsoft unveils a faster AI chip", "Shares rose in early trading.")
    news.server.publish("tiingo", "MSFT", "Microsoft unveils a FASTER AI chip!")  # same story, other source
    result, _ = news.ingest()
    assert (result["new_items"], result["published"]) == (1, 1)
    [publication] = news.published()
    assert json.loads(publication.message)["item_id"] == item_id("microsoft unveils a faster ai chip",
                                                                 dt.datetime.now(dt.UTC))


@pytest.mark.req("FR-005", "FR-018")
@pytest.mark.parametrize("mode", [FailureMode.WRONG_SHAPE, FailureMode.NOT_JSON])
def test_a_malformed_source_payload_is_a_typed_fault_and_none_of_its_articles_is_written(
    news: NewsHarness, mode: FailureMode
) -> None:
    news.server.fail("tiingo", mode)
    result, invocation = news.ingest()
    assert result["failed_sources"] == {"tiingo": "MalformedSourcePayloadError"}
    assert {item["source"] for item in news.items()} == {"finnhub"}  # not one of tiingo's 6 valid articles
    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=20)
    [tiingo] = [f.document for f in tree.find("## lambdas.ingestion.service.fetch_source")
                if f.document["annotations"]["news_source"] == "tiingo"]
    assert tiingo["fault"] is True
    assert tiingo["cause"]["exceptions"][0]["type"] == "MalformedSourcePayloadError"
    assert [e["name"] for e in silent_failures(tree)] == ["parallel_fetcher_aggregation"]


@pytest.mark.req("FR-005", "FR-018", "FR-058", "FR-042", "FR-029")
@pytest.mark.parametrize("source", ["tiingo", "finnhub"])
def test_one_bad_record_among_good_ones_is_skipped_counted_per_source_and_traced_on_its_fetch(
    news: NewsHarness, source: str
) -> None:
    """The fake source puts one record without its headline in the middle of its real-shaped array
    (for Finnhub: in the first ticker's response). The run keeps every good article of that response,
    the source does not fail (its breaker stays closed), and the skip is counted and traced."""
    news.server.fail(source, FailureMode.MALFORMED, times=1)
    with aws_calls(cloudwatch_client(), "PutMetricData") as metrics:
        result, invocation = news.ingest()

    assert result["failed_sources"] == {} and result["fetched"] == {"tiingo": 6, "finnhub": 6}
    assert result["new_items"] == 11 and {item["source"] for item in news.items()} == {"tiingo", "finnhub"}
    assert news.breaker(source) is None or news.breaker(source)["failures"] == 0
    # one call, two data: the function-wide datum the alarm watches, and the same count per source
    by_function = [{"Name": "FunctionName", "Value": function_name("ingestion")}]
    counted = [datum for call in metrics for datum in call["MetricData"] if datum["MetricName"] == "MalformedArticles"]
    assert [(datum["Dimensions"], datum["Value"]) for datum in counted] == [
        (by_function, 1), ([*by_function, {"Name": "Source", "Value": source}], 1)]
    other = "finnhub" if source == "tiingo" else "tiingo"

    tree = news.pipeline.tree(invocation.trace_header.root, expect_at_least=30)
    fetches = {node.document["annotations"]["news_source"]: node.document
               for node in tree.find("## lambdas.ingestion.service.fetch_source")}
    fetch = fetches[source]
    assert fetch["annotations"]["malformed_articles"] == 1 and fetches[other]["annotations"]["malformed_articles"] == 0
    assert not fetch.get("fault") and not fetch.get("error")  # skipped, not failed
    [skipped] = fetch["metadata"]["skipped"]["records"]
    field = "title" if source == "tiingo" else "headline"
    assert skipped == {"index": 3 if source == "tiingo" else 1, "reason": f"field {field!r} missing or not a string",
                       "ticker": None if source == "tiingo" else "AAPL"}
    assert fetch["metadata"]["skipped"]["omitted"] == 0
    assert silent_failures(tree) == []
    raw = json.dumps([node.document for node in tree.nodes()])
    assert "broken.example.com" not in raw  # nothing of the bad record's content is in the trace
    assert document_problems(tree) == [], render(tree)


@pytest.mark.req("FR-018")
def test_a_secret_without_the_source_keys_fails_the_run_before_anything_is_written(
    news: NewsHarness, stack_resources: Resources
) -> None:
    secrets = boto3.client("secretsmanager")
    name = stack_resources.secrets["news_api"]
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({"tiingo": "only-one"}))
    parameters.clear_caches()  # the function caches the secret for 5 minutes; this is a new environment
    upstream = TraceHeader.new_root()
    try:
        with pytest.raises(ConfigurationError, match="finnhub"):
            news.ingest(upstream=upstream)
    finally:
        secrets.put_secret_value(SecretId=name, SecretString=news.server.secret_string())
        parameters.clear_caches()
    assert news.items() == [] and news.server.requests == {}
    tree = news.pipeline.tree(upstream.root, expect_at_least=3)
    assert tree.find("## lambda_handler")[0].document["fault"] is True


@pytest.mark.req("FR-018")
def test_a_missing_environment_variable_is_a_configuration_error(news: NewsHarness) -> None:
    with pytest.raises(ConfigurationError, match="FINNHUB_BASE_URL"):
        news.ingest(FINNHUB_BASE_URL="")


@pytest.mark.req("FR-045", "FR-042")
def test_new_items_ingested_is_a_heartbeat_sent_every_run_zero_included(news: NewsHarness) -> None:
    news.ingest()
    ingestion = function_name("ingestion")
    samples, total = metric_samples("NewItemsIngested", ingestion), metric_sum("NewItemsIngested", ingestion)
    result, _ = news.ingest()
    assert result["new_items"] == 0
    assert metric_samples("NewItemsIngested", function_name("ingestion")) == samples + 1
    assert metric_sum("NewItemsIngested", function_name("ingestion")) == total


@pytest.mark.req("FR-042")
def test_high_latency_alert_is_sent_only_for_a_run_over_its_threshold(news: NewsHarness) -> None:
    before = metric_samples("HighLatencyAlert", function_name("ingestion"))
    news.ingest()  # the default threshold (30 s) is far away
    assert metric_samples("HighLatencyAlert", function_name("ingestion")) == before
    news.ingest(HIGH_LATENCY_ALERT_S="0")
    assert metric_samples("HighLatencyAlert", function_name("ingestion")) == before + 1


@pytest.mark.req("FR-010", "FR-011")
def test_the_audit_record_counts_the_run_and_carries_the_trace_id(news: NewsHarness) -> None:
    news.server.fail("tiingo", FailureMode.SERVER_ERROR)
    result, invocation = news.ingest()
    [audit] = news.audits()
    assert audit["xray_trace_id"] == invocation.trace_header.root
    assert audit["sk"].endswith(f"#{invocation.request_id}")
    assert (audit["new_items"], audit["published"], audit["failed_sources"]) == (6, 6, {"tiingo": "SourceHTTPError"})
    assert audit["breakers"] == {"tiingo": "closed", "finnhub": "closed"}
    started = dt.datetime.fromisoformat(audit["sk"].split("#")[0].replace("Z", "+00:00"))
    assert audit["expires_at"] == int((started + dt.timedelta(days=90)).timestamp())
    assert result["duration_ms"] == audit["duration_ms"]
