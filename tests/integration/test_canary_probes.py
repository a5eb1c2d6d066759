"""The canary's end-to-end probes against the probed functions in their own processes (canary_stack):
each fault is set where production breaks, and the test reads what an operator gets: the alert the
canary published out of band (SNS, read back from a subscribed SQS queue) and its per-path metrics
in CloudWatch, never its logs. Paging comes on the second failed run (FR-020).
"""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

import boto3
import pytest

from devstack.stack import load_stack
from lib.metrics import CANARY_NAMESPACE
from tests.integration.canary_stack import ProbeTargets, free_port
from tests.integration.test_canary import CanaryHarness


def probe_samples(metric: str, path: str) -> tuple[int, float]:
    """(sample count, sum) of a per-path probe metric so far."""
    now = dt.datetime.now(dt.UTC)
    points = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=CANARY_NAMESPACE, MetricName=metric,
        Dimensions=[{"Name": "FunctionName", "Value": load_stack().function("canary").name},
                    {"Name": "ProbePath", "Value": path}],
        StartTime=now - dt.timedelta(hours=3), EndTime=now + dt.timedelta(hours=1), Period=60,
        Statistics=["SampleCount", "Sum"])["Datapoints"]
    return int(sum(p["SampleCount"] for p in points)), float(sum(p["Sum"] for p in points))


def delta(before: tuple[int, float], after: tuple[int, float]) -> tuple[int, float]:
    return after[0] - before[0], after[1] - before[1]


def run_twice(canary: CanaryHarness) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    first, _ = canary.run()
    assert canary.alerts() == [], "one failed run never pages (FR-020)"
    second, _ = canary.run()
    return first, second, canary.alerts()


@pytest.mark.req("FR-066", "FR-074", "FR-075", "FR-036", "SC-014")
def test_a_healthy_pipeline_finds_both_probe_trees_complete_and_pages_nobody(
        canary: CanaryHarness, probe_targets: ProbeTargets) -> None:
    before = {path: (probe_samples("ProbeTreeComplete", path), probe_samples("ProbeTreeLost", path))
              for path in ("batch", "stream")}
    first, second, alerts = run_twice(canary)
    for result in (first, second):
        assert result["health"] == "healthy", result
        assert result["checks"]["batch_probe"]["status"] == "healthy"
        assert result["checks"]["stream_probe"]["status"] == "healthy"
    assert alerts == []
    for path in ("batch", "stream"):
        complete, lost = before[path]
        assert delta(complete, probe_samples("ProbeTreeComplete", path)) == (2, 2.0)  # ratio 1
        assert delta(lost, probe_samples("ProbeTreeLost", path)) == (2, 0.0)
    # The probes' traces are marked synthetic, so groups and dashboards can leave them out.
    trace_id = first["checks"]["batch_probe"]["detail"].split()[3]
    tree = probe_targets.pipeline.tree(trace_id, expect_at_least=3)
    [handler] = tree.find("## lambda_handler")
    assert handler.document["annotations"]["synthetic"] is True
    stream_trace = first["checks"]["stream_probe"]["detail"].split()[3]
    stream_tree = probe_targets.pipeline.tree(stream_trace, expect_at_least=4)
    assert stream_tree.find("## lambda_handler")[0].document["annotations"]["synthetic"] is True
    # The Invoke API closed each relayed stream: the environment was released and the invocation recorded.
    end = time.monotonic() + 5
    while not [r for r in probe_targets.healthy.records if r.trace_id == stream_trace] and time.monotonic() < end:
        time.sleep(0.05)
    assert [(r.function, r.outcome) for r in probe_targets.healthy.records if r.trace_id == stream_trace] == \
        [("sse_streaming", "streamed")]


def assert_paged_naming(alerts: list[Any], check: str, words: str) -> None:
    [page] = alerts
    assert page.payload["type"] == "canary_alert" and page.payload["consecutive_failures"] == 2
    assert check in page.subject
    detail = page.payload["checks"][check]["detail"]
    assert words in detail, detail


def faulted_run(canary: CanaryHarness, probe_targets: ProbeTargets,
                overrides: Mapping[str, Mapping[str, str]]) -> tuple[dict[str, Any], dict[str, Any], list[Any]]:
    with probe_targets.serving(overrides):
        return run_twice(canary)


@pytest.mark.req("FR-066", "FR-050", "FR-020", "SC-014")
def test_the_daemon_not_listening_is_named_daemon_or_iam(canary: CanaryHarness,
                                                       probe_targets: ProbeTargets) -> None:
    lost_before = probe_samples("ProbeTreeLost", "batch")
    complete_before = probe_samples("ProbeTreeComplete", "batch")
    dead = f"127.0.0.1:{free_port(2)}"  # SOCK_DGRAM: a UDP port nobody reads
    first, second, alerts = faulted_run(canary, probe_targets, {"dashboard": {"AWS_XRAY_DAEMON_ADDRESS": dead}})
    for result in (first, second):
        assert result["checks"]["batch_probe"]["status"] == "failed"
        assert result["checks"]["stream_probe"]["status"] == "healthy"
        assert result["probes"]["batch"]["outcome"] == "partial"
    assert_paged_naming(alerts, "batch_probe", "handler subsegment missing: daemon or IAM")
    assert "partial" in alerts[0].payload["checks"]["batch_probe"]["detail"]
    # partial, not lost: the Lambda service's own segments arrived
    assert delta(complete_before, probe_samples("ProbeTreeComplete", "batch")) == (2, 0.0)
    assert delta(lost_before, probe_samples("ProbeTreeLost", "batch")) == (2, 0.0)


@pytest.mark.req("FR-066", "FR-017", "FR-050", "FR-020")
def test_put_trace_segments_denied_for_the_functions_role_is_named(canary: CanaryHarness,
                                                                  probe_targets: ProbeTargets) -> None:
    with probe_targets.put_trace_segments_denied() as daemon:
        first, second, alerts = faulted_run(canary, probe_targets, {"dashboard": {"AWS_XRAY_DAEMON_ADDRESS": daemon}})
    assert first["checks"]["batch_probe"]["status"] == second["checks"]["batch_probe"]["status"] == "failed"
    assert_paged_naming(alerts, "batch_probe", "handler subsegment missing: daemon or IAM")
    assert alerts[0].payload["probes"]["batch"]["missing"] == ["handler subsegment missing: daemon or IAM"]


@pytest.mark.req("FR-066", "FR-074", "FR-075", "FR-050", "FR-020")
def test_the_collector_receiver_down_is_named_collector_or_exporter(canary: CanaryHarness,
                                                                   probe_targets: ProbeTargets) -> None:
    complete_before = probe_samples("ProbeTreeComplete", "stream")
    dead = f"http://127.0.0.1:{free_port()}/v1/traces"
    first, second, alerts = faulted_run(canary, probe_targets,
                                        {"sse_streaming": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": dead}})
    assert first["checks"]["batch_probe"]["status"] == "healthy"
    assert second["checks"]["stream_probe"]["status"] == "failed"
    assert_paged_naming(alerts, "stream_probe", "SSE spans missing: collector or exporter")
    assert delta(complete_before, probe_samples("ProbeTreeComplete", "stream")) == (2, 0.0)


@pytest.mark.req("FR-066", "FR-074", "FR-075", "FR-050", "FR-020", "SC-014")
def test_a_collector_exporting_to_the_wrong_region_is_named_collector_or_exporter(
        canary: CanaryHarness, probe_targets: ProbeTargets) -> None:
    """The quiet break: the collector accepts every span and exports it without an error, to another
    region's X-Ray. Only the canary, reading its own region, sees the spans missing."""
    complete_before = probe_samples("ProbeTreeComplete", "stream")
    lost_before = probe_samples("ProbeTreeLost", "stream")
    with probe_targets.misrouted_collector() as (endpoint, elsewhere):
        first, second, alerts = faulted_run(canary, probe_targets,
                                            {"sse_streaming": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint}})
        trace_id = second["probes"]["stream"]["trace_id"]
        exported = [json.loads(segment["Document"]).get("name")
                    for trace in elsewhere.batch_get_traces(TraceIds=[trace_id])["Traces"]
                    for segment in trace["Segments"]]
    for result in (first, second):
        assert result["checks"]["stream_probe"]["status"] == "failed"
        assert result["checks"]["batch_probe"]["status"] == "healthy"
        assert result["probes"]["stream"]["outcome"] == "partial"
    assert_paged_naming(alerts, "stream_probe", "SSE spans missing: collector or exporter")
    assert alerts[0].payload["probes"]["stream"]["missing"] == ["SSE spans missing: collector or exporter"]
    assert delta(complete_before, probe_samples("ProbeTreeComplete", "stream")) == (2, 0.0)
    assert delta(lost_before, probe_samples("ProbeTreeLost", "stream")) == (2, 0.0)  # partial, not lost
    assert "sse.global_stream" in exported  # the spans were exported, to the other region


@pytest.mark.req("FR-066", "FR-018")
def test_a_wrong_probe_token_is_refused_and_named_not_a_trace_loss(canary: CanaryHarness,
                                                                   probe_targets: ProbeTargets) -> None:
    other = probe_targets.resources.secrets["news_api"]  # a secret without the probe token
    first, _ = canary.run(CANARY_PROBE_SECRET_NAME=other)
    assert first["checks"]["stream_probe"]["status"] == "failed"
    assert first["checks"]["stream_probe"]["detail"] == "stream probe not run: the probe secret has no token"


@pytest.mark.req("FR-066", "FR-035")
def test_a_token_the_sse_function_does_not_hold_gets_no_stream(canary: CanaryHarness) -> None:
    """The probe stream is the canary's alone: another token is refused (401) before any stream opens."""
    name = f"canary-probe-impostor-{uuid.uuid4().hex[:8]}"
    boto3.client("secretsmanager").create_secret(Name=name, SecretString=json.dumps({"token": "not-the-canary"}))
    result, _ = canary.run(CANARY_PROBE_SECRET_NAME=name)
    assert result["checks"]["stream_probe"]["status"] == "failed"
    assert result["checks"]["stream_probe"]["detail"] == \
        "stream probe not run: the SSE function answered 401 to the probe stream"
    assert result["probes"]["stream"]["invoked"] is False
    assert result["checks"]["batch_probe"]["status"] == "healthy"
