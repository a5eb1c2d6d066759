"""The canary Lambda against moto and the local trace pipeline: X-Ray and CloudWatch health, loss
across runs, error taxonomy, paging out of band (SNS read back from a subscribed SQS queue, and an
HTTPS webhook with a self-signed certificate the invocation trusts through `SSL_CERT_FILE`).

Faults are injected on the canary's own boto3 clients with botocore event hooks
(`before-parameter-build.<service>.<Operation>`): raising there is an AWS error as the canary sees
it; mutating the parameters drops documents on their way to X-Ray.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import EndpointConnectionError, ReadTimeoutError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from devstack.aws.resources import Resources
from devstack.lambda_.invocation import Invocation, invoke_in_process
from devstack.stack import load_stack
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import TraceTree, document_problems, read_traces, render
from lambdas.canary import clients
from lambdas.canary.service import run_canary
from lambdas.canary.settings import CanarySettings
from lib.metrics import APP_NAMESPACE, CANARY_NAMESPACE
from lib.tracing.header import TraceHeader

SCHEDULED_EVENT = {
    "version": "0", "id": "7c1d2e3f-0000-4000-8000-000000000000", "detail-type": "Scheduled Event",
    "source": "aws.events", "account": "123456789012", "time": "2026-01-15T12:00:00Z", "region": "us-east-1",
    "resources": ["arn:aws:events:us-east-1:123456789012:rule/sentiment-analyzer-local-canary"], "detail": {},
}
# Tests read back at once, then after 0.2 s and 1 s (the end-to-end probes' documents travel through
# the local daemon, collector and sink first); retries do not wait. The production schedule is proven
# with a recorded sleep.
FAST = {"CANARY_READBACK_DELAYS_S": "0.2,1", "CANARY_BACKOFF_BASE_S": "0"}
BATCH = 10  # stack.json's CANARY_TRACE_BATCH_SIZE


def canary_name() -> str:
    return load_stack().function("canary").name


# ---------------------------------------------------------------- AWS-boundary faults and probes


@contextmanager
def on_call(client: Any, operation: str, hook: Callable[[dict[str, Any]], None]) -> Iterator[None]:
    """Run `hook(params)` before every `operation` of `client` (it may raise, or change the params)."""
    event = f"before-parameter-build.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    unique = f"canary-test-{uuid.uuid4().hex}"
    client.meta.events.register(event, lambda params, **_: hook(params), unique_id=unique)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=unique)


def aws_error(client: Any, code: str, status: int, operation: str) -> Exception:
    """botocore's own (modeled, where the service has one) exception for `code`."""
    error: Exception = client.exceptions.from_code(code)(
        {"Error": {"Code": code, "Message": f"injected {code}"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation)
    return error


@contextmanager
def fault(client: Any, operation: str, code: str, status: int = 400,
          when: Callable[[dict[str, Any]], bool] = lambda params: True) -> Iterator[list[dict[str, Any]]]:
    """`operation` fails with `code` whenever `when(params)`; yields the params of the failed calls."""
    failed: list[dict[str, Any]] = []

    def hook(params: dict[str, Any]) -> None:
        if when(params):
            failed.append(dict(params))
            raise aws_error(client, code, status, operation)

    with on_call(client, operation, hook):
        yield failed


@contextmanager
def calls(client: Any, operation: str) -> Iterator[list[dict[str, Any]]]:
    seen: list[dict[str, Any]] = []
    with on_call(client, operation, lambda params: seen.append(dict(params))):
        yield seen


def metric_names(params: dict[str, Any]) -> list[str]:
    return [datum["MetricName"] for datum in params.get("MetricData", [])]


@contextmanager
def drop_trace_documents(keep: Callable[[int, dict[str, Any]], bool]) -> Iterator[None]:
    """X-Ray loses documents: only those for which `keep(index of its trace, document)` reach it."""
    def hook(params: dict[str, Any]) -> None:
        documents = [json.loads(raw) for raw in params["TraceSegmentDocuments"]]
        order = list(dict.fromkeys(doc["trace_id"] for doc in documents))
        params["TraceSegmentDocuments"] = [json.dumps(doc) for doc in documents
                                           if keep(order.index(doc["trace_id"]), doc)]

    with on_call(clients.xray(), "PutTraceSegments", hook):
        yield


def samples(namespace: str, metric: str, function: str) -> int:
    now = dt.datetime.now(dt.UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=[{"Name": "FunctionName", "Value": function}],
        StartTime=now - dt.timedelta(hours=3), EndTime=now + dt.timedelta(hours=1), Period=60,
        Statistics=["SampleCount"])["Datapoints"]
    return int(sum(point["SampleCount"] for point in points))


# ---------------------------------------------------------------- the harness


@dataclass
class Alert:
    subject: str
    payload: dict[str, Any]


@dataclass
class CanaryHarness:
    pipeline: TracePipeline
    resources: Resources
    env: dict[str, str]
    queue_url: str
    published: list[dict[str, float]] = field(default_factory=list)

    def run(self, upstream: TraceHeader | None = None, function: Any = None, **overrides: str
            ) -> tuple[dict[str, Any], Invocation]:
        """One invocation; `published[-1]` is what it sent to CloudWatch, by metric name."""
        env = {**self.env, **FAST, **overrides}
        with calls(clients.cloudwatch(), "PutMetricData") as sent:
            result, invocation = invoke_in_process(function or load_stack().function("canary"), SCHEDULED_EVENT,
                                                   env, self.pipeline.daemon.address, upstream)
        self.published.append({datum["MetricName"]: datum["Value"] for params in sent
                               for datum in params["MetricData"]})
        return result, invocation

    def alerts(self) -> list[Alert]:
        """Every message the alert topic delivered since the last call (SNS envelope unwrapped)."""
        sqs = boto3.client("sqs")
        found: list[Alert] = []
        while True:
            messages = sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                           WaitTimeSeconds=0).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append(Alert(envelope.get("Subject", ""), json.loads(envelope["Message"])))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def state(self) -> dict[str, Any] | None:
        item: dict[str, Any] | None = boto3.resource("dynamodb").Table(self.resources.tables["state"]).get_item(
            Key={"pk": "canary", "sk": "state"}, ConsistentRead=True).get("Item")
        return item

    def tree(self, invocation: Invocation, at_least: int = 10) -> TraceTree:
        return self.pipeline.tree(invocation.trace_header.root, expect_at_least=at_least)


def seed_ingestion_heartbeat(function: str) -> None:
    """What every ingestion run emits (contracts: `NewItemsIngested`, 0 included)."""
    boto3.client("cloudwatch").put_metric_data(Namespace=APP_NAMESPACE, MetricData=[{
        "MetricName": "NewItemsIngested", "Dimensions": [{"Name": "FunctionName", "Value": function}],
        "Value": 0.0, "Unit": "Count"}])


# The `canary` fixture (a CanaryHarness per test) lives in conftest.py: test_canary_probes uses it too.


def failed_nodes(tree: TraceTree) -> list[dict[str, Any]]:
    return [node.document for node in tree.nodes() if node.document.get("error") or node.document.get("fault")]


def check_nodes(tree: TraceTree, check: str) -> list[dict[str, Any]]:
    return [node.document for node in tree.nodes()
            if node.document.get("annotations", {}).get("canary_check") == check]


# ---------------------------------------------------------------- healthy


@pytest.mark.req("FR-019", "FR-049", "FR-036", "FR-021", "FR-029")
def test_a_healthy_pipeline_is_healthy_with_ratio_one_and_pages_nobody(canary: CanaryHarness) -> None:
    health_before = samples(CANARY_NAMESPACE, "CanaryHealth", canary_name())
    loss_before = samples(CANARY_NAMESPACE, "trace_data_loss", canary_name())
    with calls(clients.xray(), "PutTraceSegments") as puts:
        result, invocation = canary.run()

    assert result["health"] == "healthy" and result["health_value"] == 1.0, result
    assert result["failed_checks"] == [] and result["degraded_checks"] == []
    assert set(result["checks"]) == {"batch_probe", "stream_probe", "xray_api_reachable", "trace_loss",
                                     "cloudwatch_roundtrip", "app_metrics",
                                     "canary_state", "canary_metrics"}
    assert result["traces"] == {"submitted": BATCH, "complete": BATCH, "partial": 0, "missing": 0, "refused": 0,
                                "measured": True, "completeness": 1.0}
    assert result["loss_ratio"] == 1.0
    assert result["alert"]["action"] == "none" and canary.alerts() == []
    assert sorted(result["published_metrics"]) == ["CanaryHealth", "ProbeTreeComplete", "ProbeTreeLost",
                                                   "TraceCompleteness"]
    assert samples(CANARY_NAMESPACE, "CanaryHealth", canary_name()) == health_before + 1
    assert canary.published[-1]["CanaryHealth"] == 1.0 and canary.published[-1]["TraceCompleteness"] == 1.0
    assert samples(CANARY_NAMESPACE, "trace_data_loss", canary_name()) == loss_before

    # The probes are real traces in X-Ray, annotated for the canary group's filter.
    submitted = [json.loads(raw) for raw in puts[0]["TraceSegmentDocuments"]]
    trace_ids = sorted({doc["trace_id"] for doc in submitted})
    assert len(trace_ids) == BATCH and len(submitted) == 2 * BATCH
    assert all(doc["annotations"] == {"canary_probe": True, "canary_run_id": result["run_id"]} for doc in submitted)
    stored = read_traces(canary.pipeline.xray, trace_ids)
    assert sorted(tree.trace_id for tree in stored) == trace_ids
    assert all(len(tree.documents) == 2 and not tree.orphans for tree in stored)

    # ... and its own invocation is traced like every batch Lambda's, each check on its subsegment.
    state = canary.state()
    assert state is not None and state["consecutive_failures"] == 0 and state["paged"] is False
    tree = canary.tree(invocation, at_least=15)
    assert document_problems(tree) == [], render(tree)
    assert failed_nodes(tree) == [], render(tree)
    verified = {name: check_nodes(tree, name) for name in ("xray_api_reachable", "cloudwatch_roundtrip", "app_metrics")}
    assert all(any(doc["annotations"].get("check_status") == "healthy" for doc in docs)
               for docs in verified.values()), render(tree)
    handler = tree.find("## lambda_handler")[0].document
    assert handler["annotations"]["canary_health"] == "healthy"


@pytest.mark.req("FR-019", "FR-056")
def test_the_canary_does_not_rely_on_its_own_trace_being_sampled(canary: CanaryHarness) -> None:
    upstream = TraceHeader.new_root().with_parent("53995c3f42cd8ad8", sampled=False)
    result, invocation = canary.run(upstream=upstream)
    assert result["health"] == "healthy" and result["traces"]["complete"] == BATCH
    canary.pipeline.settle()
    assert canary.pipeline.documents(invocation.trace_header.root) == []


# ---------------------------------------------------------------- trace loss across runs


@pytest.mark.req("FR-036", "SC-014", "SC-007", "FR-020", "FR-050", "FR-019")
def test_half_the_traces_lost_pages_once_after_two_runs_then_sends_one_recovery(canary: CanaryHarness) -> None:
    loss_before = samples(CANARY_NAMESPACE, "trace_data_loss", canary_name())
    with drop_trace_documents(keep=lambda index, doc: index % 2 == 0):
        first, _ = canary.run()
        assert first["traces"]["complete"] == 5 and first["traces"]["missing"] == 5
        assert first["health"] == "failed" and first["degraded_checks"] == ["xray_api_reachable"]
        assert first["failed_checks"] == ["trace_loss"] and first["loss_ratio"] == 0.5
        assert first["alert"]["action"] == "none" and canary.alerts() == []  # one failed run is no outage yet

        second, _ = canary.run()
        assert second["failed_checks"] == ["trace_loss"] and second["alert"]["action"] == "page"
        third, _ = canary.run()  # the same outage: never paged twice
        assert third["alert"]["action"] == "none" and third["alert"]["reason"] == "outage already paged"

    alerts = canary.alerts()
    assert len(alerts) == 1, alerts
    page = alerts[0]
    assert page.payload["type"] == "canary_alert" and page.payload["consecutive_failures"] == 2
    assert set(page.payload["checks"]) == {"xray_api_reachable", "trace_loss"}
    assert page.payload["traces"]["missing"] == 5 and page.payload["loss_ratio"] == 0.5
    assert "trace_loss" in page.subject and canary_name() in page.subject
    assert samples(CANARY_NAMESPACE, "trace_data_loss", canary_name()) == loss_before + 3
    assert [sent["TraceCompleteness"] for sent in canary.published] == [0.5, 0.5, 0.5]
    assert [sent["trace_data_loss"] for sent in canary.published] == [1, 1, 1]

    # Healed: the loss is judged over the window, so the outage ends once the window is clean.
    healing = [canary.run()[0] for _ in range(3)]
    assert [run["health"] for run in healing] == ["failed", "failed", "healthy"]
    assert [run["alert"]["action"] for run in healing] == ["none", "none", "recover"]
    recoveries = canary.alerts()
    assert [alert.payload["type"] for alert in recoveries] == ["canary_recovery"]
    assert recoveries[0].payload["health"] == "healthy" and "RECOVERED" in recoveries[0].subject
    assert canary.run()[0]["alert"]["action"] == "none" and canary.alerts() == []
    state = canary.state()
    assert state is not None and state["paged"] is False and state["outage_since"] is None


@pytest.mark.req("FR-019", "FR-036")
def test_traces_with_documents_missing_are_partial_and_degrade_the_run(canary: CanaryHarness) -> None:
    # Half the traces lose their separately sent subsegment: X-Ray holds them, incomplete (IsPartial).
    with drop_trace_documents(keep=lambda index, doc: index % 2 == 0 or doc.get("type") != "subsegment"):
        result, _ = canary.run(CANARY_LOSS_THRESHOLD="0.5")
    assert result["traces"]["partial"] == 5 and result["traces"]["complete"] == 5
    assert result["traces"]["missing"] == 0
    assert result["health"] == "degraded" and result["degraded_checks"] == ["xray_api_reachable"]
    assert result["checks"]["xray_api_reachable"]["detail"].startswith("5/10 traces complete, 5 partial")
    assert result["health_value"] == 0.5 and canary.published[-1]["CanaryHealth"] == 0.5


@pytest.mark.req("FR-019", "FR-036")
def test_documents_x_ray_refuses_count_their_traces_missing_without_waiting_for_them(canary: CanaryHarness) -> None:
    def corrupt_two(params: dict[str, Any]) -> None:
        documents = [json.loads(raw) for raw in params["TraceSegmentDocuments"]]
        for document in documents[:3:2]:  # the segments of the first two traces
            del document["start_time"]
        params["TraceSegmentDocuments"] = [json.dumps(document) for document in documents]

    with on_call(clients.xray(), "PutTraceSegments", corrupt_two), \
            calls(clients.xray(), "BatchGetTraces") as reads:
        result, _ = canary.run(CANARY_LOSS_THRESHOLD="0.5")
    assert result["traces"] | {"completeness": None} == {"submitted": BATCH, "complete": 8, "partial": 0, "missing": 2,
                                                         "refused": 2, "measured": True, "completeness": None}
    probes = {probe["trace_id"] for probe in result["probes"].values()}
    asked = [trace_id for params in reads for trace_id in params["TraceIds"] if trace_id not in probes]
    assert len(asked) == len(set(asked)) == 8  # found at the first read; the refused two never asked for
    assert result["degraded_checks"] == ["xray_api_reachable"] and result["failed_checks"] == []


@pytest.mark.req("FR-036", "SC-014", "FR-079", "FR-020", "FR-050")
def test_put_trace_segments_throttled_fails_the_run_and_pages_on_the_second(canary: CanaryHarness) -> None:
    loss_before = samples(CANARY_NAMESPACE, "trace_data_loss", canary_name())
    with fault(clients.xray(), "PutTraceSegments", "ThrottlingException", 429) as throttled:
        first, invocation = canary.run()
        assert len(throttled) == 4  # the call and three retries
        failure = first["checks"]["xray_api_reachable"]["failure"]
        assert failure == {"operation": "xray:PutTraceSegments", "code": "ThrottlingException",
                           "kind": "transient", "message": failure["message"], "attempts": 4}
        assert first["traces"]["missing"] == BATCH and first["loss_ratio"] == 0.0
        assert first["failed_checks"] == ["xray_api_reachable", "trace_loss"] and canary.alerts() == []
        second, _ = canary.run()
    assert second["alert"]["action"] == "page"
    assert [alert.payload["reason"] for alert in canary.alerts()] == ["2 consecutive failed runs"]
    assert samples(CANARY_NAMESPACE, "trace_data_loss", canary_name()) == loss_before + 2

    tree = canary.tree(invocation)
    throttles = [doc for doc in failed_nodes(tree) if doc.get("throttle")]
    assert throttles and all(doc["annotations"].get("failure_kind") == "throttle" for doc in throttles
                             if doc.get("annotations", {}).get("canary_check")), render(tree)
    assert not tree.find("## lambda_handler")[0].document.get("fault")


# ---------------------------------------------------------------- CloudWatch error taxonomy


@pytest.mark.req("FR-079", "SC-035", "FR-050", "FR-049", "SC-021")
def test_put_metric_data_access_denied_pages_in_the_same_run_without_a_single_retry(canary: CanaryHarness) -> None:
    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403) as denied:
        result, _ = canary.run()
    per_path = ["ProbeTreeComplete", "ProbeTreeLost"]
    assert [metric_names(params) for params in denied] == [["CanaryTestMetric"],
                                                           ["CanaryHealth", "TraceCompleteness", *per_path, *per_path]]
    assert result["checks"]["cloudwatch_roundtrip"]["failure"]["kind"] == "auth"
    assert result["checks"]["cloudwatch_roundtrip"]["failure"]["attempts"] == 1
    assert result["failed_checks"] == ["cloudwatch_roundtrip", "canary_metrics"]
    assert result["alert"]["action"] == "page"
    alerts = canary.alerts()
    assert len(alerts) == 1
    assert alerts[0].payload["reason"] == "AWS rejected the canary's credentials or permissions"
    assert alerts[0].payload["checks"]["cloudwatch_roundtrip"]["failure"]["code"] == "AccessDenied"
    assert alerts[0].payload["consecutive_failures"] == 1

    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403):
        again, _ = canary.run()  # still revoked: the same outage
    assert again["alert"]["action"] == "none" and canary.alerts() == []


@pytest.mark.req("FR-079", "SC-035", "FR-020")
def test_put_metric_data_throttled_is_retried_three_times_then_fails_without_paging_at_once(
    canary: CanaryHarness,
) -> None:
    with fault(clients.cloudwatch(), "PutMetricData", "Throttling", 400) as throttled:
        result, _ = canary.run()
    assert [metric_names(params)[0] for params in throttled] == ["CanaryTestMetric"] * 4 + ["CanaryHealth"] * 4
    failure = result["checks"]["cloudwatch_roundtrip"]["failure"]
    assert (failure["code"], failure["kind"], failure["attempts"]) == ("Throttling", "transient", 4)
    assert result["failed_checks"] == ["cloudwatch_roundtrip", "canary_metrics"]
    assert result["alert"]["action"] == "none" and canary.alerts() == []


@pytest.mark.req("FR-079", "SC-035")
def test_a_throttle_that_passes_within_the_retries_leaves_the_run_healthy(canary: CanaryHarness) -> None:
    seen: list[str] = []

    def throttle_twice(params: dict[str, Any]) -> None:
        seen.append(metric_names(params)[0])
        if seen.count("CanaryTestMetric") <= 2 and metric_names(params) == ["CanaryTestMetric"]:
            raise aws_error(clients.cloudwatch(), "Throttling", 400, "PutMetricData")

    with on_call(clients.cloudwatch(), "PutMetricData", throttle_twice):
        result, _ = canary.run()
    assert seen == ["CanaryTestMetric"] * 3 + ["CanaryHealth"]
    assert result["health"] == "healthy", result


class _Body:
    def __init__(self, content: bytes):
        self._content = content

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._content


@pytest.mark.req("FR-079", "SC-035")
def test_botocore_adds_no_retries_of_its_own_under_the_canarys_three(canary: CanaryHarness) -> None:
    """Throttled on the wire (HTTP 429 from X-Ray): exactly 1 + 3 requests leave, not 4 × botocore's retries."""
    sent: list[str] = []

    def throttled(request: Any, **_: Any) -> AWSResponse:
        sent.append(request.url)
        body = json.dumps({"__type": "ThrottlingException", "message": "Rate exceeded"}).encode()
        return AWSResponse(request.url, 429, {"x-amzn-ErrorType": "ThrottlingException"}, _Body(body))

    xray = clients.xray()
    unique = f"canary-test-{uuid.uuid4().hex}"
    xray.meta.events.register("before-send.xray.PutTraceSegments", throttled, unique_id=unique)
    try:
        result, _ = canary.run()
    finally:
        xray.meta.events.unregister("before-send.xray.PutTraceSegments", unique_id=unique)
    assert len(sent) == 4
    failure = result["checks"]["xray_api_reachable"]["failure"]
    assert (failure["code"], failure["kind"], failure["attempts"]) == ("ThrottlingException", "transient", 4)


# The back-off schedule itself: the canary run with a sleep that records instead of waiting.
SLEPT: list[float] = []


def handler_with_recorded_sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return run_canary(CanarySettings.from_env(), context.aws_request_id, sleep=SLEPT.append).as_dict()


RECORDED = replace(load_stack().function("canary"), handler=f"{__name__}.handler_with_recorded_sleep")


@pytest.mark.req("FR-079", "SC-035", "FR-078", "SC-034")
def test_backoff_doubles_per_retry_and_read_back_waits_30_then_60_seconds(canary: CanaryHarness) -> None:
    SLEPT.clear()
    with fault(clients.cloudwatch(), "PutMetricData", "ThrottlingException", 429,
               when=lambda params: metric_names(params) == ["CanaryTestMetric"]), \
            drop_trace_documents(keep=lambda index, doc: False):
        result, _ = canary.run(function=RECORDED, CANARY_READBACK_DELAYS_S="30,60", CANARY_BACKOFF_BASE_S="1")
    # PutMetricData: three retries, 1 s, 2 s, 4 s; then the traces are looked for three times; then the
    # end-to-end probes' trees, on the same schedule (the local daemon stores them within a moment).
    assert SLEPT[:5] == [1.0, 2.0, 4.0, 30.0, 60.0] and SLEPT[5:] in ([], [30.0], [30.0, 60.0]), SLEPT
    assert result["traces"]["missing"] == BATCH
    assert "after 3 read(s)" in result["checks"]["xray_api_reachable"]["detail"]


@pytest.mark.req("FR-078", "SC-034")
def test_traces_that_arrive_late_are_found_by_a_later_read(canary: CanaryHarness) -> None:
    """X-Ray's propagation delay: the first reads find nothing, the one after the 30 s wait finds all."""
    SLEPT.clear()
    reads: list[int] = []

    def late(params: dict[str, Any]) -> None:
        reads.append(len(params["TraceIds"]))
        if not SLEPT:  # nothing waited yet: X-Ray has not indexed the traces, asking finds none
            params["TraceIds"] = [f"1-00000000-{uuid.uuid4().hex[:24]}" for _ in params["TraceIds"]]

    with on_call(clients.xray(), "BatchGetTraces", late):
        result, _ = canary.run(function=RECORDED, CANARY_READBACK_DELAYS_S="30,60", CANARY_BACKOFF_BASE_S="1")
    assert SLEPT[:1] == [30.0] and SLEPT[1:] in ([], [30.0]), SLEPT  # the API check's wait, then the probes'
    assert reads[:4] == [5, 5, 5, 5] and all(count <= 2 for count in reads[4:])  # then the two probe traces
    assert result["health"] == "healthy" and "after 2 read(s)" in result["checks"]["xray_api_reachable"]["detail"]


# ---------------------------------------------------------------- every AWS error: no crash, the check named


def _test_metric(params: dict[str, Any]) -> bool:
    return metric_names(params) == ["CanaryTestMetric"]


def _named(metric: str) -> Callable[[dict[str, Any]], bool]:
    return lambda params: params.get("MetricName") == metric


PROBES = ("batch_probe", "stream_probe")
# (client, operation, error code or botocore exception, HTTP status, when, checks that must fail, kind)
AWS_ERRORS: dict[str, tuple[Callable[[], Any], str, Any, int, Callable[[dict[str, Any]], bool], set[str], str]] = {
    "xray-put-throttled": (clients.xray, "PutTraceSegments", "ThrottlingException", 429, lambda p: True,
                           {"xray_api_reachable", "trace_loss"}, "transient"),
    "xray-put-invalid": (clients.xray, "PutTraceSegments", "InvalidRequestException", 400, lambda p: True,
                         {"xray_api_reachable", "trace_loss"}, "rejected"),
    "xray-put-denied": (clients.xray, "PutTraceSegments", "AccessDeniedException", 403, lambda p: True,
                        {"xray_api_reachable", "trace_loss"}, "auth"),
    "xray-put-unreachable": (clients.xray, "PutTraceSegments",
                             EndpointConnectionError(endpoint_url="https://xray.us-east-1.amazonaws.com"), 0,
                             lambda p: True, {"xray_api_reachable", "trace_loss"}, "transient"),
    # BatchGetTraces serves the X-Ray API check and the end-to-end probes' read-back alike.
    "xray-get-throttled": (clients.xray, "BatchGetTraces", "ThrottlingException", 429, lambda p: True,
                           {"xray_api_reachable", *PROBES}, "transient"),
    "xray-get-invalid": (clients.xray, "BatchGetTraces", "InvalidRequestException", 400, lambda p: True,
                         {"xray_api_reachable", *PROBES}, "rejected"),
    "xray-get-timeout": (clients.xray, "BatchGetTraces",
                         ReadTimeoutError(endpoint_url="https://xray.us-east-1.amazonaws.com"), 0, lambda p: True,
                         {"xray_api_reachable", *PROBES}, "transient"),
    "cw-put-internal": (clients.cloudwatch, "PutMetricData", "InternalServiceError", 500, _test_metric,
                        {"cloudwatch_roundtrip"}, "transient"),
    "cw-put-invalid": (clients.cloudwatch, "PutMetricData", "InvalidParameterValue", 400, _test_metric,
                       {"cloudwatch_roundtrip"}, "rejected"),
    "cw-put-not-authorized": (clients.cloudwatch, "PutMetricData", "NotAuthorized", 403, lambda p: True,
                              {"cloudwatch_roundtrip", "canary_metrics"}, "auth"),
    "cw-put-bad-token": (clients.cloudwatch, "PutMetricData", "InvalidClientTokenId", 403, lambda p: True,
                         {"cloudwatch_roundtrip", "canary_metrics"}, "auth"),
    "cw-health-throttled": (clients.cloudwatch, "PutMetricData", "Throttling", 400,
                            lambda p: "CanaryHealth" in metric_names(p), {"canary_metrics"}, "transient"),
    "cw-readback-invalid": (clients.cloudwatch, "GetMetricStatistics", "InvalidParameterValue", 400,
                            _named("CanaryTestMetric"), {"cloudwatch_roundtrip"}, "rejected"),
    "cw-readback-denied": (clients.cloudwatch, "GetMetricStatistics", "AccessDenied", 403,
                           _named("CanaryTestMetric"), {"cloudwatch_roundtrip"}, "auth"),
    "cw-app-metrics-internal": (clients.cloudwatch, "GetMetricStatistics", "InternalServiceError", 500,
                                _named("NewItemsIngested"), {"app_metrics"}, "transient"),
    "state-read-throttled": (clients.dynamodb, "GetItem", "ProvisionedThroughputExceededException", 400,
                             lambda p: True, {"canary_state"}, "transient"),
    "state-read-denied": (clients.dynamodb, "GetItem", "AccessDeniedException", 400, lambda p: True,
                          {"canary_state"}, "auth"),
    "state-write-missing-table": (clients.dynamodb, "PutItem", "ResourceNotFoundException", 400, lambda p: True,
                                  {"canary_state"}, "rejected"),
    "alert-topic-denied": (clients.sns, "Publish", "AuthorizationError", 403, lambda p: True, set(), "auth"),
}


@pytest.mark.req("FR-018", "FR-079", "FR-005")
@pytest.mark.parametrize("case", list(AWS_ERRORS))
def test_every_aws_error_is_survived_and_the_failed_check_is_named(canary: CanaryHarness, case: str) -> None:
    client_of, operation, error, status, when, expected, kind = AWS_ERRORS[case]
    client = client_of()

    def hook(params: dict[str, Any]) -> None:
        if when(params):
            raise error if isinstance(error, Exception) else aws_error(client, error, status, operation)

    with on_call(client, operation, hook):
        result, invocation = canary.run()

    assert set(result["failed_checks"]) >= expected, result
    assert result["health"] == ("failed" if expected else "healthy"), result
    named = [result["checks"][name]["failure"] for name in expected - {"trace_loss"}]  # loss is derived
    assert all(failure is not None and failure["kind"] == kind for failure in named), named
    assert not set(result["failed_checks"]) - expected - {"trace_loss"}, result
    tree = canary.tree(invocation)
    assert document_problems(tree) == [], render(tree)
    assert not tree.find("## lambda_handler")[0].document.get("fault")  # the run itself did not crash
    if expected:
        assert failed_nodes(tree), render(tree)  # ... and its trace shows where it failed
    for name in expected - {"canary_state", "trace_loss"}:
        assert any(doc.get("error") or doc.get("fault") for doc in check_nodes(tree, name)), render(tree)


@pytest.mark.req("FR-050", "FR-018")
def test_an_alert_no_channel_delivered_is_reported_and_tried_again_next_run(canary: CanaryHarness) -> None:
    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403), \
            fault(clients.sns(), "Publish", "InternalError", 500) as publishes:
        result, _ = canary.run()
    assert len(publishes) == 4  # SNS internal errors are retried like any transient error
    assert result["alert"]["action"] == "page"
    assert result["alert"]["delivery"] == {"sns": "InternalError (transient)", "webhook": "off", "delivered": False}
    assert "alert_delivery" in result["failed_checks"]
    assert canary.alerts() == []
    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403):
        retried, _ = canary.run()
    assert retried["alert"]["action"] == "page" and len(canary.alerts()) == 1


@pytest.mark.req("FR-050", "FR-020")
def test_an_unreadable_state_pages_rather_than_risk_silence(canary: CanaryHarness) -> None:
    with fault(clients.dynamodb(), "GetItem", "InternalServerError", 500):
        result, _ = canary.run()
    assert result["failed_checks"] == ["canary_state"] and result["alert"]["action"] == "page"
    assert canary.alerts()[0].payload["reason"].startswith("canary state unreadable")


@pytest.mark.req("FR-049", "SC-021")
def test_application_metrics_that_stopped_arriving_fail_the_app_metrics_check(canary: CanaryHarness) -> None:
    result, _ = canary.run(INGESTION_FUNCTION_NAME=f"sentiment-analyzer-local-silent-{uuid.uuid4().hex[:8]}")
    assert result["failed_checks"] == ["app_metrics"]
    assert result["checks"]["app_metrics"]["detail"].startswith("no NewItemsIngested from sentiment-analyzer-local-")


@pytest.mark.req("FR-049")
def test_a_test_datum_cloudwatch_never_returns_fails_the_roundtrip(canary: CanaryHarness) -> None:
    def elsewhere(params: dict[str, Any]) -> None:
        if params.get("MetricName") == "CanaryTestMetric":  # the datum is not where it was written
            params["StartTime"] = params["StartTime"] - dt.timedelta(hours=1)
            params["EndTime"] = params["EndTime"] - dt.timedelta(hours=1)

    with on_call(clients.cloudwatch(), "GetMetricStatistics", elsewhere):
        result, _ = canary.run()
    assert result["failed_checks"] == ["cloudwatch_roundtrip"]
    assert result["checks"]["cloudwatch_roundtrip"]["detail"] == "test datum not readable after 3 read(s)"


def test_the_ingestion_function_name_resolves_to_its_physical_name(canary: CanaryHarness) -> None:
    assert canary.env["INGESTION_FUNCTION_NAME"] == load_stack().function("ingestion").name


# ---------------------------------------------------------------- the HTTPS webhook


@dataclass
class Webhook:
    url: str
    ca_file: Path
    bodies: list[dict[str, Any]]
    status: list[int]


def _certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1 it signed (strict-verification clean)."""
    now = dt.datetime.now(dt.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "canary test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(hours=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False, data_encipherment=False,
                                       key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    server = (x509.CertificateBuilder()
              .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
              .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
              .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(hours=1))
              .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                             critical=False)
              .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
              .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
              .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
              .sign(ca_key, hashes.SHA256()))
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return paths


@pytest.fixture
def webhook(tmp_path: Path) -> Iterator[Webhook]:
    ca_file, cert_file, key_file = _certificates(tmp_path)
    hook = Webhook("", ca_file, [], [200])

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            hook.bodies.append({"path": self.path, "content_type": self.headers["Content-Type"],
                                "body": json.loads(self.rfile.read(length))})
            self.send_response(hook.status[0])
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"https://127.0.0.1:{server.server_address[1]}/hooks/canary-secret-path"
    yield hook
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.mark.req("FR-080", "FR-050")
def test_the_webhook_receives_the_same_alert_over_verified_https(canary: CanaryHarness, webhook: Webhook) -> None:
    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403):
        result, invocation = canary.run(CANARY_WEBHOOK_URL=webhook.url, SSL_CERT_FILE=str(webhook.ca_file))
    assert result["alert"]["delivery"] == {"sns": "sent", "webhook": "sent", "delivered": True}
    [sns_alert] = canary.alerts()
    [received] = webhook.bodies
    assert received["path"] == "/hooks/canary-secret-path" and received["content_type"] == "application/json"
    assert received["body"] == sns_alert.payload
    tree = canary.tree(invocation)
    assert "canary-secret-path" not in json.dumps(tree.documents)  # the URL's secret stays out of traces


@pytest.mark.req("FR-080", "FR-050")
def test_the_webhook_alone_delivers_when_sns_refuses(canary: CanaryHarness, webhook: Webhook) -> None:
    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403), \
            fault(clients.sns(), "Publish", "AuthorizationError", 403) as publishes:
        result, _ = canary.run(CANARY_WEBHOOK_URL=webhook.url, SSL_CERT_FILE=str(webhook.ca_file))
    assert len(publishes) == 1  # a permission error is never retried
    assert result["alert"]["delivery"] == {"sns": "AuthorizationError (auth)", "webhook": "sent", "delivered": True}
    assert "alert_delivery" not in result["failed_checks"]
    assert len(webhook.bodies) == 1 and webhook.bodies[0]["body"]["type"] == "canary_alert"


@pytest.mark.req("FR-080", "FR-018")
def test_an_untrusted_or_failing_webhook_is_a_failed_channel_not_a_crash(canary: CanaryHarness,
                                                                         webhook: Webhook) -> None:
    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403):
        untrusted, _ = canary.run(CANARY_WEBHOOK_URL=webhook.url)  # the test CA is not trusted
    assert untrusted["alert"]["delivery"]["sns"] == "sent"
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted["alert"]["delivery"]["webhook"]
    assert webhook.bodies == []

    canary.alerts()
    webhook.status[0] = 500
    with fault(clients.cloudwatch(), "PutMetricData", "AccessDenied", 403), \
            fault(clients.sns(), "Publish", "AuthorizationError", 403):
        boto3.resource("dynamodb").Table(canary.resources.tables["state"]).delete_item(
            Key={"pk": "canary", "sk": "state"})
        failing, _ = canary.run(CANARY_WEBHOOK_URL=webhook.url, SSL_CERT_FILE=str(webhook.ca_file))
    assert failing["alert"]["delivery"] == {"sns": "AuthorizationError (auth)", "webhook": "HTTP 500",
                                            "delivered": False}
    assert "alert_delivery" in failing["failed_checks"]
