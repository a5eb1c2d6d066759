"""The dashboard API through the emulated API Gateway stage (devstack.api_gateway), on moto and the
local trace pipeline: one trace from the browser's header to DynamoDB, the sampling rule at the
edge, CORS, the endpoints' shapes (specs/contracts.md), and a 4xx for every kind of bad input."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.api_gateway import ApiGateway, GatewayRequest, GatewayResponse
from devstack.aws import Resources
from devstack.lambda_service import SamplingRule
from devstack.pipeline import TracePipeline
from devstack.trace_reader import Node, TraceTree, document_problems, render
from lib.news.model import Resolution, iso_ms
from lib.tables import dynamodb
from lib.tracing.header import TraceHeader, new_entity_id
from tests.fixtures.news_pipeline import aws_fault

NOW = dt.datetime.now(dt.UTC)
TICKERS = {"AAPL": "Apple Inc.", "MSFT": "Microsoft Corporation"}


def browser_header() -> TraceHeader:
    """What the frontend sends: Root and Parent, never Sampled (FR-016)."""
    return TraceHeader.new_root().with_parent(new_entity_id(), sampled=None)


class Dashboard:
    """Seeds the tables, sends requests through the gateway, cleans up."""

    def __init__(self, invoke: Any, pipeline: TracePipeline, resources: Resources):
        self.pipeline = pipeline
        self.gateway = ApiGateway(invoke, pipeline.daemon.address)
        resource = boto3.resource("dynamodb")
        self.news = resource.Table(resources.tables["news"])
        self.timeseries = resource.Table(resources.tables["timeseries"])
        self.config = resource.Table(resources.tables["config"])

    def request(self, method: str, path: str, query: str = "", body: bytes | str | None = None,
                headers: dict[str, str] | None = None, trace: TraceHeader | None = None) -> GatewayResponse:
        sent = {"X-Amzn-Trace-Id": (trace or browser_header()).format(), "Origin": "http://localhost:5173",
                **(headers or {})}
        raw = body.encode() if isinstance(body, str) else body or b""
        return self.gateway.handle(GatewayRequest(method, path, query, sent, raw))

    def get(self, path: str, query: str = "", **kwargs: Any) -> GatewayResponse:
        return self.request("GET", path, query, **kwargs)

    def tree(self, response: GatewayResponse, expect_at_least: int) -> TraceTree:
        return self.pipeline.tree(response.trace_header.root, expect_at_least=expect_at_least)

    # seeding ---------------------------------------------------------------------------------
    def track(self) -> None:
        with self.config.batch_writer() as batch:
            for ticker, name in TICKERS.items():
                batch.put_item(Item={"pk": "ticker", "sk": ticker, "name": name})

    def item(self, ticker: str, headline: str, published: dt.datetime, label: str | None = None,
             score: float | None = None) -> dict[str, Any]:
        stamp = iso_ms(published)
        row: dict[str, Any] = {
            "item_id": hashlib.sha256(headline.encode()).hexdigest()[:32], "published_at": stamp, "ticker": ticker,
            "headline": headline, "summary": f"About {headline}", "source": "tiingo",
            "url": f"https://news.example.com/{uuid.uuid4().hex}", "status": "pending", "status_changed_at": stamp,
            "ingested_at": stamp, "expires_at": int((published + dt.timedelta(days=30)).timestamp()),
        }
        if label is not None:
            analyzed = iso_ms(published + dt.timedelta(seconds=30))
            row.update(status="analyzed", status_changed_at=analyzed, analyzed_at=analyzed, sentiment_label=label,
                       sentiment_score=Decimal(str(score)))
        self.news.put_item(Item=row)
        return row

    def bucket(self, ticker: str, resolution: Resolution, start: dt.datetime, **counts: int) -> None:
        total = sum(counts.values())
        self.timeseries.put_item(Item={
            "series_key": f"{ticker}#{resolution}", "bucket_start": iso_ms(resolution.bucket_start(start)),
            "count": total, "score_sum": Decimal(str(round(0.5 * counts.get("positive", 0)
                                                           - 0.5 * counts.get("negative", 0), 4))),
            **counts,
        })

    def clear(self) -> None:
        for table, keys in ((self.news, ("item_id", "published_at")), (self.timeseries, ("series_key", "bucket_start")),
                            (self.config, ("pk", "sk"))):
            rows = table.scan(ConsistentRead=True)["Items"]
            with table.batch_writer() as batch:
                for row in rows:
                    if table is self.config and row["pk"] not in ("ticker", "alert"):
                        continue
                    batch.delete_item(Key={key: row[key] for key in keys})

    def alert_rows(self) -> list[dict[str, Any]]:
        return list(self.config.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "alert"},
                                      ConsistentRead=True)["Items"])


@pytest.fixture
def dashboard(invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources) -> Iterator[Dashboard]:
    harness = Dashboard(invoke, trace_pipeline, stack_resources)
    harness.clear()
    harness.track()
    yield harness
    harness.clear()


def aws_operations(tree: TraceTree) -> list[str]:
    return [str(node.document["aws"]["operation"]) for node in tree.nodes()
            if node.document.get("namespace") == "aws" and "operation" in node.document.get("aws", {})]


def chain(tree: TraceTree, node: Node) -> list[str]:
    """Origins (or names) from the trace's root down to `node`."""
    by_id = {each.id: each for each in tree.nodes()}
    names = []
    current: Node | None = node
    while current is not None:
        names.append(str(current.document.get("origin") or current.document["name"]))
        current = by_id.get(str(current.document.get("parent_id", "")))
    return list(reversed(names))


# Tracing ----------------------------------------------------------------------------------------------

@pytest.mark.req("SC-001", "FR-016", "FR-029", "SC-003")
def test_a_browser_request_is_one_trace_from_the_stage_through_the_function_to_dynamodb(dashboard: Dashboard) -> None:
    dashboard.item("AAPL", "Apple opens a new campus", NOW - dt.timedelta(hours=1), "positive", 0.6)
    browser = browser_header()
    response = dashboard.get("/api/v2/items", "ticker=AAPL&limit=5", trace=browser)

    assert response.status == 200, response.body
    assert response.header("x-amzn-trace-id") == f"Root={browser.root}"
    assert response.trace_header.root == browser.root and response.trace_header.sampled is True
    tree = dashboard.tree(response, expect_at_least=7)

    [stage] = tree.roots  # the browser writes no segment: the stage is the trace's root
    assert stage.document["origin"] == "AWS::ApiGateway::Stage"
    assert stage.document["name"] == dashboard.gateway.segment_name
    assert stage.document["parent_id"] == browser.parent  # linked to the browser's Parent
    assert stage.document["http"]["request"]["method"] == "GET"
    assert stage.document["http"]["response"]["status"] == 200
    [lambda_service] = stage.children
    assert lambda_service.document["origin"] == "AWS::Lambda"
    route = ["AWS::ApiGateway::Stage", "AWS::Lambda", "AWS::Lambda::Function", "## lambda_handler",
             "## lambdas.dashboard.api.items"]
    assert chain(tree, tree.find("## lambdas.dashboard.api.items")[0]) == route
    dynamodb_calls = tree.find("dynamodb")
    assert [chain(tree, node) for node in dynamodb_calls] == [[*route, "dynamodb"]] * 2, render(tree)
    assert sorted(aws_operations(tree)) == ["GetItem", "Query"]
    # The only dangling link is the browser's Parent; everything else is a valid, connected document.
    assert document_problems(tree) == [f"orphan {stage.document['name']}/{stage.id} -> {browser.parent}"]
    items = tree.find("## lambdas.dashboard.api.items")[0].document
    assert items["annotations"]["ticker"] == "AAPL" and items["annotations"]["item_count"] == 1


@pytest.mark.req("FR-035")
def test_a_client_sampled_1_does_not_force_sampling_when_the_rule_says_no(
    dashboard: Dashboard, invoke: Any, trace_pipeline: TracePipeline
) -> None:
    never = ApiGateway(invoke, trace_pipeline.daemon.address, sampling_rule=SamplingRule(fixed_rate=0,
                                                                                         reservoir_per_second=0))
    forced = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
    response = never.handle(GatewayRequest("GET", "/api/v2/tickers", headers={"X-Amzn-Trace-Id": forced.format()}))

    assert response.status == 200
    assert response.trace_header.root == forced.root  # the client's Root is kept for linkage ...
    assert response.trace_header.sampled is False     # ... but not its decision
    # A later sampled request's documents arrive, so the pipeline has drained past the first one.
    later = dashboard.get("/api/v2/health")
    dashboard.tree(later, expect_at_least=3)
    assert trace_pipeline.documents(forced.root) == []


@pytest.mark.req("FR-035")
def test_the_function_sees_the_edge_decision_not_the_clients(dashboard: Dashboard) -> None:
    forced = TraceHeader.new_root().with_parent(new_entity_id(), sampled=False)
    response = dashboard.get("/api/v2/health", trace=forced)
    # The rule samples everything here: the client's Sampled=0 is dropped like a Sampled=1 would be.
    assert response.trace_header == TraceHeader(forced.root, response.stage_segment_id, True)
    tree = dashboard.tree(response, expect_at_least=4)
    assert tree.roots[0].document["origin"] == "AWS::ApiGateway::Stage"


@pytest.mark.req("FR-005", "FR-018")
def test_a_dynamodb_failure_faults_the_invocation_and_answers_502_never_200(dashboard: Dashboard) -> None:
    client = dynamodb().meta.client
    with aws_fault(client, "Query", "ProvisionedThroughputExceededException") as failed:
        response = dashboard.get("/api/v2/tickers")
    assert failed
    assert response.status == 502 and response.json() == {"message": "Internal server error"}
    assert response.header("x-amzn-trace-id") == f"Root={response.trace_header.root}"
    tree = dashboard.tree(response, expect_at_least=6)
    function = next(n.document for n in tree.nodes() if n.document.get("origin") == "AWS::Lambda::Function")
    assert function["fault"] is True
    assert tree.find("## lambda_handler")[0].document["fault"] is True
    recorded = [n.document for n in tree.nodes() if isinstance(n.document.get("cause"), dict)]
    assert recorded[0]["cause"]["exceptions"][0]["type"] == "ProvisionedThroughputExceededException"
    assert tree.find("## lambdas.dashboard.api.tickers")[0].document["fault"] is True
    stage = tree.roots[0].document
    assert stage["fault"] is True and stage["http"]["response"]["status"] == 502
