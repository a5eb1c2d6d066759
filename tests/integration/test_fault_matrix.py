"""The fault matrix: each fault at the AWS boundary (and in the tracing pipeline itself), with what
the function does, what the trace shows, what CloudWatch counts, and why nothing is lost.

The X-Ray SDK flags an AWS call by its HTTP status (429 throttle, other 4xx error, 5xx fault) and
adds `fault` for any exception; DynamoDB and CloudWatch throttle with HTTP 400, so their own
subsegment is error+fault with the throttling exception as its cause. Our silent-path subsegments
classify by the AWS error code (lib.tracing.powertools.classify_failure): those carry `throttle`.

    case                          | fault                            | outcome                    | on the trace                 | metric                          | nothing lost
    analysis-update-throttled     | DynamoDB UpdateItem throttled    | invocation fails           | dynamodb error, cause; fault | AnalysisErrors +1               | item pending; the redelivery analyses it once
    analysis-fanout-throttled     | TransactWriteItems throttled     | analysed, fan-out given up | silent path 5 throttle       | TimeseriesFanoutPartialFailure  | score stored and handed on
    ingestion-put-throttled       | DynamoDB PutItem throttled once  | run fails fast             | dynamodb error, cause; fault | (Lambda Errors)                 | nothing half-written; next run stores all once
    ingestion-publish-denied      | SNS Publish AuthorizationError   | run goes on, items pending | silent path 4 error          | DownstreamNotificationFailure   | self-healing re-publishes them
    analysis-publish-error        | SNS Publish InternalError        | analysed, hand-off failed  | silent path 4 fault          | DownstreamNotificationFailure   | score stored; the missed alert is counted (path 4)
    metrics-cloudwatch-denied     | PutMetricData AccessDenied       | run fails                  | cloudwatch error; fault      | its own datum refused: Errors   | stuck items are counted again next run
    ingestion-cloudwatch-throttled| PutMetricData Throttling         | run fails after its work   | cloudwatch error, cause      | heartbeat missing -> breaching  | items stored and published once
    canary-cloudwatch-denied      | PutMetricData AccessDenied       | failed, pages at once      | failed check subsegment      | (refused)                       | the page goes out of band (SNS)
    notification-sendgrid-429     | SendGrid 429 once                | retried, email sent        | attempt 1 throttle, 2 ok     | -                               | one email
    notification-sendgrid-500     | SendGrid 500 always              | fails after 3 attempts     | SendGrid subsegments fault   | NotificationDeliveryFailures +1 | retried by Lambda, then dead-lettered
    notification-sendgrid-timeout | SendGrid never answers           | as above, timed out        | SendGrid subsegments fault   | NotificationDeliveryFailures +1 | as above
    sse-collector-down            | OTLP collector down              | every event, bounded flush | spans lost (FR-066)          | -                               | every event
    sse-poll-denied               | poll Query AccessDenied          | stream ends, error trailer | poll span error              | -                               | reconnect (Last-Event-ID): every event once
    analysis-daemon-down          | X-Ray daemon down                | invocation succeeds        | nothing (UDP)                | -                               | item analysed
"""  # noqa: E501

from __future__ import annotations

import datetime as dt
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devstack.aws.cloudwatch import metric_sum
from devstack.aws.fault_gate import AwsGate, FaultRule, GatedMotoServer
from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.aws.sns_delivery import Publication, SnsDelivery
from devstack.fakes.sendgrid_sink import SendGridSink, SinkFailure
from devstack.lambda_.invocation import invoke_in_process
from devstack.lambda_.lambda_service import LambdaService
from devstack.stack import load_stack
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import Node, TraceTree, render, silent_failures
from lib.alerts import AlertTable, Direction
from lib.metrics import cloudwatch_client
from lib.news.model import iso_ms
from lib.tracing.header import TraceHeader
from tests.fixtures.news_pipeline import (  # noqa: F401  (fixtures)
    NewsHarness,
    aws_calls,
    aws_fault,
    function_name,
    news_fixture,
    news_server_fixture,
)
from tests.integration.test_sse_stream import SseEnvironment, items_of, parse_frames, seed


@pytest.fixture
def world(news: NewsHarness, trace_pipeline: TracePipeline, moto_server: MotoServer,
          stack_resources: Resources) -> Iterator[World]:
    with SendGridSink(hang_s=2) as sink:
        sink.store_api_key(stack_resources.secrets["sendgrid"])
        yield World(news, trace_pipeline, moto_server, stack_resources, sink)


class World:
    def __init__(self, news: NewsHarness, pipeline: TracePipeline, moto: MotoServer, resources: Resources,
                 sendgrid: SendGridSink):
        self.news, self.pipeline, self.moto, self.resources, self.sendgrid = news, pipeline, moto, resources, sendgrid

    def tree(self, root: str, at_least: int) -> TraceTree:
        return self.pipeline.tree(root, expect_at_least=at_least)


def flagged(tree: TraceTree, flag: str, name: str | None = None) -> list[Node]:
    return [node for node in tree.nodes() if node.document.get(flag)
            and (name is None or node.document.get("name") == name)]


def handler_faulted(tree: TraceTree) -> bool:
    return any(node.document.get("fault") for node in tree.find("## lambda_handler"))


def failed_call(tree: TraceTree, service: str, code: str) -> list[Node]:
    """The SDK's subsegments of `service` calls that failed with `code` (error flag, cause names it)."""
    return [node for node in tree.find(service) if node.document.get("error") and any(
        code in (exception.get("type", ""), exception.get("message", ""))
        or code in str(exception.get("message", ""))
        for exception in node.document.get("cause", {}).get("exceptions", []))]


def error_code(error: BaseException) -> str:
    return str(error.response["Error"]["Code"]) if isinstance(error, ClientError) else type(error).__name__


# -- DynamoDB ----------------------------------------------------------------------------------------
def analysis_update_throttled(world: World) -> None:
    news = world.news
    item = news.store_item("Retailer beats holiday sales forecast", "Shoppers spent more than expected.")
    event, upstream = news.sns_event(item.message()), TraceHeader.new_root()
    errors_before = metric_sum("AnalysisErrors", function_name("analysis"))
    with aws_fault(news.dynamodb, "UpdateItem", "ProvisionedThroughputExceededException"), \
            pytest.raises(ClientError) as raised:
        news.analyse(event, upstream=upstream)
    assert error_code(raised.value) == "ProvisionedThroughputExceededException"
    tree = world.tree(upstream.root, 4)
    assert failed_call(tree, "dynamodb", "ProvisionedThroughputExceededException") and handler_faulted(tree), \
        render(tree)
    assert metric_sum("AnalysisErrors", function_name("analysis")) == errors_before + 1
    assert news.item(item)["status"] == "pending" and news.published("sentiment_scored") == []
    news.analyse(event)  # SNS redelivers the same message
    assert news.item(item)["status"] == "analyzed" and len(news.published("sentiment_scored")) == 1


def analysis_fanout_throttled(world: World) -> None:
    news = world.news
    item = news.store_item("Airline raises its guidance", "Bookings are strong.")
    upstream = TraceHeader.new_root()
    before = metric_sum("TimeseriesFanoutPartialFailure", function_name("analysis"))
    with aws_fault(news.dynamodb, "TransactWriteItems", "ThrottlingException") as refused:
        result, _ = news.analyse(news.sns_event(item.message()), upstream=upstream)
    assert len(refused) >= 2 and result["items"][0]["fanout_failed"] is True  # retried, bounded
    tree = world.tree(upstream.root, 6)
    [path] = silent_failures(tree)
    assert path["name"] == "timeseries_fanout_batch_write" and path.get("throttle"), render(tree)
    assert metric_sum("TimeseriesFanoutPartialFailure", function_name("analysis")) == before + 1
    assert news.item(item)["status"] == "analyzed" and len(news.published("sentiment_scored")) == 1


def ingestion_put_throttled(world: World) -> None:
    news = world.news
    upstream = TraceHeader.new_root()
    with aws_fault(news.dynamodb, "PutItem", "ProvisionedThroughputExceededException", times=1), \
            pytest.raises(ClientError):
        news.ingest(upstream=upstream)
    tree = world.tree(upstream.root, 10)
    assert failed_call(tree, "dynamodb", "ProvisionedThroughputExceededException") and handler_faulted(tree), \
        render(tree)
    assert news.items() == [] and news.published() == []  # nothing half-written, nothing announced
    result, _ = news.ingest()  # the next scheduled run
    stored = news.items()
    assert result["new_items"] == len(stored) == 11
    assert sorted(json.loads(p.message)["item_id"] for p in news.published()) == sorted(i["item_id"] for i in stored)


# -- SNS -------------------------------------------------------------------------------------------------
def ingestion_publish_denied(world: World) -> None:
    news = world.news
    upstream = TraceHeader.new_root()
    before = metric_sum("DownstreamNotificationFailure", function_name("ingestion"))
    with aws_fault(news.sns, "Publish", "AuthorizationError", 403):
        result, _ = news.ingest(upstream=upstream)
    assert result["new_items"] == 11 and result["publish_failures"] == 11
    tree = world.tree(upstream.root, 20)
    assert [p["name"] for p in silent_failures(tree)] == ["downstream_sns_publish"], render(tree)
    assert metric_sum("DownstreamNotificationFailure", function_name("ingestion")) == before + 1
    assert {item["status"] for item in news.items()} == {"pending"}
    news.backdate_pending(minutes=15)  # time passes; self-healing takes the stuck items
    healed, _ = news.ingest()
    assert healed["self_healed"] == 11
    assert sorted(json.loads(p.message)["item_id"] for p in news.published()) == sorted(
        item["item_id"] for item in news.items())


def analysis_publish_error(world: World) -> None:
    news = world.news
    item = news.store_item("Bank posts record profit", "Trading revenue soared.")
    upstream = TraceHeader.new_root()
    before = metric_sum("DownstreamNotificationFailure", function_name("analysis"))
    with aws_fault(news.sns, "Publish", "InternalError", 500):
        result, _ = news.analyse(news.sns_event(item.message()), upstream=upstream)
    assert result["items"][0]["publish_failed"] is True
    tree = world.tree(upstream.root, 6)
    [path] = silent_failures(tree)
    assert path["name"] == "downstream_sns_publish" and path.get("fault"), render(tree)
    assert metric_sum("DownstreamNotificationFailure", function_name("analysis")) == before + 1
    stored = news.item(item)
    assert stored["status"] == "analyzed" and stored["sentiment_label"] == result["items"][0]["label"]


# -- CloudWatch ------------------------------------------------------------------------------------------
def metrics_cloudwatch_denied(world: World) -> None:
    upstream = TraceHeader.new_root()
    env = {name: world.resources.resolve(value) for name, value in load_stack().function("metrics").env.items()}
    with aws_fault(cloudwatch_client(), "PutMetricData", "AccessDenied", 403) as refused, \
            pytest.raises(ClientError) as raised:
        invoke_in_process(load_stack().function("metrics"), {}, env, world.pipeline.daemon.address, upstream)
    assert error_code(raised.value) == "AccessDenied"
    # Its StuckItems datum, then its MetricsLambdaErrors datum: both refused; Lambda's Errors metric remains.
    assert [datum["MetricName"] for call in refused for datum in call["MetricData"]] == [
        "StuckItems", "MetricsLambdaErrors"]
    tree = world.tree(upstream.root, 4)
    assert failed_call(tree, "monitoring", "AccessDenied") and handler_faulted(tree), render(tree)


def ingestion_cloudwatch_throttled(world: World) -> None:
    news = world.news
    upstream = TraceHeader.new_root()
    with aws_fault(cloudwatch_client(), "PutMetricData", "Throttling") as refused, pytest.raises(ClientError):
        news.ingest(upstream=upstream)
    assert [datum["MetricName"] for call in refused for datum in call["MetricData"]] == ["NewItemsIngested"]
    tree = world.tree(upstream.root, 20)
    assert failed_call(tree, "monitoring", "Throttling") and handler_faulted(tree), render(tree)
    stored = news.items()
    assert len(stored) == 11 and sorted(json.loads(p.message)["item_id"] for p in news.published()) == sorted(
        item["item_id"] for item in stored)


def canary_cloudwatch_denied(world: World) -> None:
    from lambdas.canary import clients  # imported here: the handler's modules load in the Lambda environment

    state = boto3.resource("dynamodb").Table(world.resources.tables["state"])
    state.delete_item(Key={"pk": "canary", "sk": "state"})
    env = {**{name: world.resources.resolve(value) for name, value in load_stack().function("canary").env.items()},
           "CANARY_READBACK_DELAYS_S": "0,0", "CANARY_BACKOFF_BASE_S": "0"}
    upstream = TraceHeader.new_root()
    with aws_fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403), \
            aws_calls(clients.sns(), "Publish") as pages:
        result, _ = invoke_in_process(load_stack().function("canary"), {}, env, world.pipeline.daemon.address,
                                      upstream)
    assert result["health"] == "failed" and result["alert"]["action"] == "page"
    assert len(pages) == 1  # out of band, in the same run (FR-050, FR-079)
    tree = world.tree(upstream.root, 8)
    assert flagged(tree, "error"), render(tree)
    state.delete_item(Key={"pk": "canary", "sk": "state"})


# -- SendGrid --------------------------------------------------------------------------------------------
@contextmanager
def alert_rule(world: World) -> Iterator[None]:
    alerts = AlertTable(world.resources.tables["config"])
    rule, _ = alerts.create("owner-fault", "FAULT", Direction.ABOVE, 0.2, "desk@example.com", dt.datetime.now(dt.UTC))
    try:
        yield
    finally:
        alerts.delete(rule.owner, rule.alert_id)


def notify(world: World, upstream: TraceHeader) -> Any:
    now = dt.datetime.now(dt.UTC)
    message = {"item_id": uuid.uuid4().hex, "published_at": iso_ms(now - dt.timedelta(minutes=2)), "ticker": "FAULT",
               "headline": "Fault Corp soars", "label": "positive", "score": 0.8, "analyzed_at": iso_ms(now)}
    delivery = SnsDelivery(load_stack(), world.resources, world.pipeline.daemon.address)
    event = delivery.event(Publication(world.resources.topics["sentiment_scored"], json.dumps(message), None,
                                       str(uuid.uuid4()), None, time.time()))
    env = {**{name: world.resources.resolve(value)
              for name, value in load_stack().function("notification").env.items()},
           **world.sendgrid.environment(), "SENDGRID_RETRY_DELAYS_S": "0.05,0.1", "SENDGRID_TIMEOUT_S": "0.5"}
    return invoke_in_process(load_stack().function("notification"), event, env, world.pipeline.daemon.address,
                             upstream)


def sendgrid_nodes(tree: TraceTree) -> list[dict[str, Any]]:
    return sorted((n.document for n in tree.find("SendGrid")), key=lambda d: float(d["start_time"]))


def notification_sendgrid_429(world: World) -> None:
    upstream = TraceHeader.new_root()
    world.sendgrid.fail(SinkFailure.RATE_LIMITED, times=1)
    with alert_rule(world):
        result, _ = notify(world, upstream)
    assert result["notifications"][0]["sent"] == 1 and len(world.sendgrid.sent()) == 1
    attempts = sendgrid_nodes(world.tree(upstream.root, 8))
    assert [bool(a.get("throttle")) for a in attempts] == [True, False]


def _sendgrid_failing(world: World, mode: SinkFailure, flag: str) -> None:
    upstream = TraceHeader.new_root()
    before = metric_sum("NotificationDeliveryFailures", function_name("notification"))
    world.sendgrid.fail(mode)
    with alert_rule(world), pytest.raises(Exception) as raised:
        notify(world, upstream)
    world.sendgrid.recover()
    # Raised, so Lambda retries the message and then dead-letters it (test_bad_input proves the DLQ).
    assert type(raised.value).__name__ == "NotificationDeliveryError"
    attempts = sendgrid_nodes(world.tree(upstream.root, 8))
    assert len(attempts) == 3 and all(a.get(flag) for a in attempts), attempts
    assert metric_sum("NotificationDeliveryFailures", function_name("notification")) == before + 1
    assert world.sendgrid.sent() == []


def notification_sendgrid_500(world: World) -> None:
    _sendgrid_failing(world, SinkFailure.SERVER_ERROR, "fault")


def notification_sendgrid_timeout(world: World) -> None:
    _sendgrid_failing(world, SinkFailure.HANG, "fault")


# -- the tracing pipeline itself ---------------------------------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def sse_environment(world: World, moto: MotoServer, traces_endpoint: str) -> Iterator[SseEnvironment]:
    environment = SseEnvironment(world.pipeline, moto, world.resources, traces_endpoint,
                                 {"SSE_POLL_INTERVAL_S": "0.2", "SSE_HEARTBEAT_INTERVAL_S": "0.5",
                                  "SSE_DEADLINE_MARGIN_S": "0.4", "SSE_INDEX_SETTLE_MS": "100"}).start()
    try:
        assert environment.open("/api/v2/stream/status").prelude(20)[0] == 200
        yield environment
    finally:
        environment.stop()


def _stream_items(environment: SseEnvironment, ticker: str, headers: dict[str, str] | None = None,
                  seed_during: Callable[[], None] | None = None, timeout_s: float = 2.5) -> tuple[list[str], Any]:
    call = environment.open(headers=headers, timeout_s=timeout_s)
    assert call.prelude(10)[0] == 200
    if seed_during is not None:
        seed_during()
    call.wait(timeout_s + 5)
    return items_of(parse_frames(b"".join(call.chunks())), ticker), call


def sse_collector_down(world: World) -> None:
    table = boto3.resource("dynamodb").Table(world.resources.tables["news"])
    with sse_environment(world, world.moto, f"http://127.0.0.1:{_closed_port()}/v1/traces") as environment:
        seeded: list[dict[str, Any]] = []
        started = time.monotonic()
        delivered, call = _stream_items(environment, "DOWN", seed_during=lambda: seeded.extend(
            seed(table, "DOWN") for _ in range(3)))
        elapsed = time.monotonic() - started
    assert call.error is None and delivered == [item["item_id"] for item in
                                                sorted(seeded, key=lambda i: (i["status_changed_at"], i["item_id"]))]
    assert elapsed < 2.5 + 2.0  # the end-of-stream flush is bounded, not the exporter's default 7 s
    documents = world.pipeline.documents(call.invocation.trace_header.root)
    assert not [d for d in documents if str(d.get("name", "")).startswith("sse.")]  # spans lost, by design


def sse_poll_denied(world: World) -> None:
    table_name = world.resources.tables["news"]
    table = boto3.resource("dynamodb").Table(table_name)
    gate = AwsGate()
    gated = GatedMotoServer(gate).start()
    try:
        with sse_environment(world, gated, world.pipeline.receiver.endpoint) as environment:
            first = [seed(table, "DENY") for _ in range(2)]
            rule = gate.arm(FaultRule.dynamodb("Query", "AccessDeniedException", table=table_name))
            broken = environment.open(timeout_s=2.5)
            assert broken.prelude(10)[0] == 200 and broken.wait(8)
            assert broken.error is not None and rule.hits == 1
            delivered = items_of(parse_frames(b"".join(broken.chunks())), "DENY")
            tree = world.tree(broken.invocation.trace_header.root, 4)
            assert flagged(tree, "error") or flagged(tree, "fault"), render(tree)
            # The browser reconnects from the last id it saw; everything arrives, once.
            frames = parse_frames(b"".join(broken.chunks()))
            last_id = frames[-1]["id"] if frames else None
            later: list[dict[str, Any]] = []
            resumed, call = _stream_items(environment, "DENY", headers={"Last-Event-ID": last_id} if last_id else None,
                                          seed_during=lambda: later.append(seed(table, "DENY")))
    finally:
        gated.stop()
    everything = sorted(first + later, key=lambda i: (i["status_changed_at"], i["item_id"]))
    assert call.error is None
    assert delivered + resumed == [item["item_id"] for item in everything]


def analysis_daemon_down(world: World) -> None:
    """A fresh execution environment (the SDK's emitter takes the daemon address at INIT) whose daemon is gone."""
    news = world.news
    item = news.store_item("Utility wins rate case", "Regulators approved the plan.")
    service = LambdaService(load_stack(), world.resources, f"127.0.0.1:{_closed_port()}", world.moto.endpoint,
                            max_environments={"analysis": 1})
    upstream = TraceHeader.new_root()
    try:
        service.start()
        result, invocation = service.invoke("analysis", news.sns_event(item.message()), upstream=upstream)
    finally:
        service.stop()
    assert invocation.sampled and result["items"][0]["label"] in ("positive", "neutral", "negative")
    assert news.item(item)["status"] == "analyzed" and result["items"][0]["publish_failed"] is False
    assert world.pipeline.documents(upstream.root) == []  # lost without a word: the canary's to notice


@pytest.mark.parametrize("case", [
    pytest.param(analysis_update_throttled, id="analysis-update-throttled",
                 marks=pytest.mark.req("FR-005", "FR-018", "FR-029", "SC-003")),
    pytest.param(analysis_fanout_throttled, id="analysis-fanout-throttled",
                 marks=pytest.mark.req("FR-002", "FR-043", "SC-004", "SC-019")),
    pytest.param(ingestion_put_throttled, id="ingestion-put-throttled", marks=pytest.mark.req("FR-005", "FR-018")),
    pytest.param(ingestion_publish_denied, id="ingestion-publish-denied",
                 marks=pytest.mark.req("FR-002", "FR-043", "SC-004", "FR-013")),
    pytest.param(analysis_publish_error, id="analysis-publish-error", marks=pytest.mark.req("FR-002", "FR-043")),
    pytest.param(metrics_cloudwatch_denied, id="metrics-cloudwatch-denied",
                 marks=pytest.mark.req("FR-004", "FR-005", "FR-018")),
    pytest.param(ingestion_cloudwatch_throttled, id="ingestion-cloudwatch-throttled",
                 marks=pytest.mark.req("FR-018", "FR-045")),
    pytest.param(canary_cloudwatch_denied, id="canary-cloudwatch-denied",
                 marks=pytest.mark.req("FR-079", "SC-035", "FR-050")),
    pytest.param(notification_sendgrid_429, id="notification-sendgrid-429", marks=pytest.mark.req("FR-028", "SC-011")),
    pytest.param(notification_sendgrid_500, id="notification-sendgrid-500",
                 marks=pytest.mark.req("FR-028", "SC-011", "FR-005")),
    pytest.param(notification_sendgrid_timeout, id="notification-sendgrid-timeout",
                 marks=pytest.mark.req("FR-028", "SC-011")),
    pytest.param(sse_collector_down, id="sse-collector-down", marks=pytest.mark.req("FR-055", "FR-066", "SC-031")),
    pytest.param(sse_poll_denied, id="sse-poll-denied", marks=pytest.mark.req("FR-005", "FR-081", "SC-036")),
    pytest.param(analysis_daemon_down, id="analysis-daemon-down", marks=pytest.mark.req("FR-018", "FR-066")),
])
def test_fault_matrix(world: World, case: Callable[[World], None]) -> None:
    case(world)
