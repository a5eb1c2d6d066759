"""The metrics Lambda (the monitor of monitors): `StuckItems` from a seeded news table, its DynamoDB
and CloudWatch calls as subsegments (FR-003, FR-004), and a fault plus `MetricsLambdaErrors` when
its own work fails."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.aws.resources import Resources
from devstack.lambda_.invocation import Invocation, invoke_in_process
from devstack.stack import load_stack
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import Node, TraceTree, document_problems, render
from lib.metrics import APP_NAMESPACE, cloudwatch_client
from lib.news.model import iso_ms
from lib.tables import dynamodb
from lib.tracing.header import TraceHeader
from tests.fixtures.news_pipeline import SCHEDULED_EVENT, aws_calls, aws_fault, function_name


class Metrics:
    def __init__(self, invoke: Any, pipeline: TracePipeline, resources: Resources):
        self.invoke = invoke
        self.pipeline = pipeline
        self.news = boto3.resource("dynamodb").Table(resources.tables["news"])

    def seed(self, status: str, changed_minutes_ago: float, count: int = 1) -> None:
        now = dt.datetime.now(dt.UTC)
        with self.news.batch_writer() as batch:
            for _ in range(count):
                changed = iso_ms(now - dt.timedelta(minutes=changed_minutes_ago))
                batch.put_item(Item={
                    "item_id": uuid.uuid4().hex, "published_at": iso_ms(now - dt.timedelta(hours=1)), "ticker": "AAPL",
                    "headline": "seeded", "summary": "", "source": "tiingo", "url": "https://news.example.com/x",
                    "status": status, "status_changed_at": changed, "ingested_at": changed,
                    "expires_at": int((now + dt.timedelta(days=30)).timestamp()),
                })

    def run(self, upstream: TraceHeader, **env: str) -> tuple[Any, Invocation]:
        result, invocation = invoke_in_process(load_stack().function("metrics"), SCHEDULED_EVENT,
                                               {**self.invoke.env("metrics"), **env}, self.pipeline.daemon.address,
                                               upstream)
        return result, invocation

    def clear(self) -> None:
        rows = self.news.scan(ConsistentRead=True, ProjectionExpression="item_id, published_at")["Items"]
        with self.news.batch_writer() as batch:
            for row in rows:
                batch.delete_item(Key={"item_id": row["item_id"], "published_at": row["published_at"]})


@pytest.fixture
def metrics(invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources) -> Iterator[Metrics]:
    harness = Metrics(invoke, trace_pipeline, stack_resources)
    harness.clear()
    yield harness
    harness.clear()


def published(calls: list[dict[str, Any]]) -> list[tuple[str, float, list[dict[str, str]], str]]:
    return [(datum["MetricName"], datum["Value"], datum["Dimensions"], call["Namespace"])
            for call in calls for datum in call["MetricData"]]


def parent_name(tree: TraceTree, node: Node) -> str:
    by_id = {each.id: each for each in tree.nodes()}
    return str(by_id[str(node.document["parent_id"])].document["name"])


def dimensions() -> list[dict[str, str]]:
    return [{"Name": "FunctionName", "Value": function_name("metrics")}]


@pytest.mark.req("FR-003", "FR-004", "FR-029", "SC-003", "FR-042")
def test_stuck_items_counts_items_pending_longer_than_five_minutes_and_its_calls_are_subsegments(
    metrics: Metrics
) -> None:
    metrics.seed("pending", 45, count=3)
    metrics.seed("pending", 6)              # just past 5 minutes: stuck
    metrics.seed("pending", 2, count=2)     # recent: analysis may still be on it
    metrics.seed("analyzed", 30, count=4)   # done long ago
    upstream = TraceHeader.new_root()
    with aws_calls(cloudwatch_client(), "PutMetricData") as calls:
        result, _ = metrics.run(upstream)

    assert result["stuck_items"] == 4 and result["stuck_after_minutes"] == 5
    assert published(calls) == [("StuckItems", 4, dimensions(), APP_NAMESPACE)]
    tree = metrics.pipeline.tree(upstream.root, expect_at_least=6)  # 2 facades, handler, count, Query, Put
    assert document_problems(tree) == [], render(tree)

    count = tree.find("## lambdas.metrics.service.count_stuck_items")[0]
    assert count.document["annotations"]["stuck_items"] == 4
    [query] = [n for n in tree.find("dynamodb") if n.document["aws"]["operation"] == "Query"]
    assert parent_name(tree, query) == count.document["name"]
    assert query.document["aws"]["table_name"] == metrics.news.name
    [put] = [n for n in tree.nodes() if n.document.get("aws", {}).get("operation") == "PutMetricData"]
    assert parent_name(tree, put) == "## lambdas.metrics.service.publish_stuck_items"
    assert put.document["namespace"] == "aws" and put.document["http"]["response"]["status"] == 200
    assert tree.find("## lambda_handler")[0].document["annotations"]["stuck_items"] == 4


@pytest.mark.req("FR-042", "FR-045")
def test_stuck_items_is_published_every_run_zero_included(metrics: Metrics) -> None:
    metrics.seed("pending", 1)
    with aws_calls(cloudwatch_client(), "PutMetricData") as calls:
        result, _ = metrics.run(TraceHeader.new_root())
    assert result["stuck_items"] == 0
    assert published(calls) == [("StuckItems", 0, dimensions(), APP_NAMESPACE)]


@pytest.mark.req("FR-005", "FR-018", "FR-003", "FR-042")
def test_a_failed_query_faults_the_run_and_counts_metrics_lambda_errors(metrics: Metrics) -> None:
    metrics.seed("pending", 45)
    upstream = TraceHeader.new_root()
    with aws_calls(cloudwatch_client(), "PutMetricData") as calls, \
            aws_fault(dynamodb().meta.client, "Query", "InternalServerError", status=500), \
            pytest.raises(Exception) as raised:
        metrics.run(upstream)

    assert type(raised.value).__name__ == "InternalServerError"
    assert published(calls) == [("MetricsLambdaErrors", 1, dimensions(), APP_NAMESPACE)]  # and no StuckItems
    tree = metrics.pipeline.tree(upstream.root, expect_at_least=6)  # 2 facades, handler, count, Query, Put
    count = tree.find("## lambdas.metrics.service.count_stuck_items")[0].document
    assert count["fault"] is True
    handler = tree.find("## lambda_handler")[0].document
    assert handler["fault"] is True and handler["annotations"]["metrics_error"] == "InternalServerError"
    function = next(n.document for n in tree.nodes() if n.document.get("origin") == "AWS::Lambda::Function")
    assert function["fault"] is True
    assert [n.document["aws"]["operation"] for n in tree.nodes()
            if n.document.get("aws", {}).get("operation") == "PutMetricData"] == ["PutMetricData"]


@pytest.mark.req("FR-004", "FR-005", "FR-018")
def test_a_failed_stuck_items_publish_faults_the_run_and_is_counted(metrics: Metrics) -> None:
    upstream = TraceHeader.new_root()
    with aws_calls(cloudwatch_client(), "PutMetricData") as calls, \
            aws_fault(cloudwatch_client(), "PutMetricData", "InternalServiceError", status=500,
                      when=lambda body: "StuckItems" in json.dumps(body, default=str)), \
            pytest.raises(Exception) as raised:
        metrics.run(upstream)

    assert type(raised.value).__name__ == "InternalServiceFault"  # botocore's class for that code
    assert [name for name, *_ in published(calls)] == ["StuckItems", "MetricsLambdaErrors"]
    tree = metrics.pipeline.tree(upstream.root, expect_at_least=8)
    publish = tree.find("## lambdas.metrics.service.publish_stuck_items")[0].document
    assert publish["fault"] is True
    assert tree.find("## lambda_handler")[0].document["fault"] is True


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("value", ["abc", "0", "-5", "2.5", ""])
def test_a_bad_stuck_after_setting_fails_the_run(metrics: Metrics, value: str) -> None:
    with aws_calls(cloudwatch_client(), "PutMetricData") as calls, pytest.raises(Exception) as raised:
        metrics.run(TraceHeader.new_root(), STUCK_AFTER_MINUTES=value)
    assert type(raised.value).__name__ == "ConfigurationError"
    assert published(calls) == [("MetricsLambdaErrors", 1, dimensions(), APP_NAMESPACE)]
