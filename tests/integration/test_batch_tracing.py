"""The batch Lambdas' tracing (src/lib/tracing/powertools.py), through the real local pipeline:
X-Ray SDK → UDP → local daemon → PutTraceSegments (moto) → BatchGetTraces."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
from typing import Any

import pytest

from devstack.aws.cloudwatch import metric_sum
from devstack.lambda_.invocation import SamplingRule, invoke_in_process
from devstack.stack import FunctionSpec
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import document_problems
from lib.tracing.annotations import InvalidAnnotationError
from lib.tracing.bounds import MAX_DOCUMENT_BYTES, MAX_MESSAGE_CHARS
from lib.tracing.header import TraceHeader
from lib.tracing.powertools import MAX_RECORDED_SKIPS, MAX_SKIP_FIELD_CHARS, PATCHED_MODULES

PROBE = FunctionSpec("probe", "tests.fixtures.probe_handler.lambda_handler", "zip", 128, 30, {}, {}, None)


@pytest.fixture
def run(trace_pipeline: TracePipeline) -> Any:
    def call(event: dict[str, Any], upstream: TraceHeader | None = None, rule: SamplingRule | None = None) -> Any:
        return invoke_in_process(PROBE, event, {}, trace_pipeline.daemon.address, upstream, sampling_rule=rule)

    return call


@pytest.mark.req("FR-029", "SC-003", "SC-023")
def test_handler_subsegments_hang_under_the_lambda_facade(run: Any, trace_pipeline: TracePipeline) -> None:
    _, invocation = run({})
    tree = trace_pipeline.tree(invocation.trace_header.root, expect_at_least=5)
    assert [root.document["origin"] for root in tree.roots] == ["AWS::Lambda"]
    handler = tree.find("## lambda_handler")[0]
    assert handler.document["parent_id"] == invocation.function_segment_id
    dynamodb = [node for node in tree.nodes() if node.document.get("namespace") == "aws"]
    assert dynamodb and dynamodb[0].document["aws"]["operation"] == "ListTables"
    assert document_problems(tree) == []


@pytest.mark.req("FR-030")
def test_exactly_one_patching_mechanism_patches_exactly_the_declared_modules(run: Any) -> None:
    run({})
    from aws_xray_sdk.core.patcher import _PATCHED_MODULES

    assert set(_PATCHED_MODULES) == set(PATCHED_MODULES)


@pytest.mark.req("FR-005", "FR-058", "SC-025")
def test_raising_handler_gives_fault_and_bounded_cause_even_for_a_1mb_message(
    run: Any, trace_pipeline: TracePipeline
) -> None:
    upstream = TraceHeader.new_root()
    with pytest.raises(RuntimeError):
        run({"action": "raise", "message": "boom " * 200_000}, upstream=upstream)
    documents = trace_pipeline.tree(upstream.root, expect_at_least=3).documents
    handler = next(d for d in documents if d["name"] == "## lambda_handler")
    assert handler["fault"] is True
    exception = handler["cause"]["exceptions"][0]
    assert exception["type"] == "RuntimeError"
    assert len(exception["message"]) <= MAX_MESSAGE_CHARS
    assert all(len(json.dumps(d)) < MAX_DOCUMENT_BYTES for d in documents)
    function = next(d for d in documents if d.get("origin") == "AWS::Lambda::Function")
    assert function["fault"] is True


@pytest.mark.req("FR-002", "FR-005", "FR-043", "SC-002", "SC-019")
def test_silent_failure_records_one_error_subsegment_and_its_metric(
    run: Any, trace_pipeline: TracePipeline
) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    result, invocation = run({"action": "silent"})
    assert result == {"failed": True, "error_type": "ResourceNotFoundException"}
    tree = trace_pipeline.tree(invocation.trace_header.root, expect_at_least=6)
    failed = [n.document for n in tree.nodes() if n.document.get("annotations", {}).get("silent_failure_path")]
    assert len(failed) == 1
    assert failed[0]["name"] == "audit_trail_write" and failed[0]["error"] is True
    assert failed[0]["cause"]["exceptions"][0]["type"] == "ResourceNotFoundException"
    handler = tree.find("## lambda_handler")[0].document
    assert not handler.get("fault") and not handler.get("error")  # handled: the run went on
    assert metric_sum("AuditEventPersistenceFailure", PROBE.name, since=before) >= 1


@pytest.mark.req("FR-002", "FR-018")
def test_a_tracer_error_inside_a_silent_failure_block_faults_the_run_and_is_not_counted_as_the_path(
    run: Any, trace_pipeline: TracePipeline
) -> None:
    before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
    counted_before = _audit_failures(before)
    upstream = TraceHeader.new_root()
    with pytest.raises(InvalidAnnotationError):
        run({"action": "silent_then_bug", "annotations": {"bad.key": 1}}, upstream=upstream)

    tree = trace_pipeline.tree(upstream.root, expect_at_least=4)
    [path] = tree.find("audit_trail_write")
    assert path.document["fault"] is True
    assert path.document["cause"]["exceptions"][0]["type"] == "InvalidAnnotationError"
    assert tree.find("## lambda_handler")[0].document["fault"] is True
    assert _audit_failures(before) == counted_before  # a bug is not the audit write failing


def _audit_failures(since: dt.datetime) -> float:
    return metric_sum("AuditEventPersistenceFailure", PROBE.name, since=since)


@pytest.mark.req("FR-012", "FR-010", "FR-011")
def test_every_log_line_carries_the_trace_id(run: Any) -> None:
    run({})  # the probe's Powertools logger exists once the module is imported
    service_logger = logging.getLogger(PROBE.service_name)
    captured = io.StringIO()
    tap = logging.StreamHandler(captured)
    tap.setFormatter(service_logger.handlers[0].formatter)  # the Powertools JSON formatter itself
    service_logger.addHandler(tap)
    try:
        _, invocation = run({"action": "silent"})
    finally:
        service_logger.removeHandler(tap)
    lines = [json.loads(line) for line in captured.getvalue().splitlines() if line.startswith("{")]
    assert {line["level"] for line in lines} >= {"INFO", "WARNING"}
    assert all(line["xray_trace_id"] == invocation.trace_header.root for line in lines)
    assert not any("correlation_id" in line for line in lines)


@pytest.mark.req("FR-056", "FR-035")
def test_sampled_zero_sends_nothing(run: Any, trace_pipeline: TracePipeline) -> None:
    upstream = TraceHeader.new_root().with_parent("53995c3f42cd8ad8", sampled=False)
    _, invocation = run({}, upstream=upstream)
    trace_pipeline.settle()
    assert trace_pipeline.documents(invocation.trace_header.root) == []


@pytest.mark.req("FR-006")
def test_invalid_annotation_keys_fail_the_invocation(run: Any) -> None:
    with pytest.raises(InvalidAnnotationError):
        run({"action": "annotate", "annotations": {"bad.key": 1}})
    with pytest.raises(InvalidAnnotationError):
        run({"action": "annotate", "annotations": {f"k{i}": i for i in range(50)}})


@pytest.mark.req("FR-058", "FR-005")
def test_skipped_records_are_counted_and_listed_bounded_on_the_subsegment(
        run: Any, trace_pipeline: TracePipeline) -> None:
    skipped = [{"index": i, "reason": f"field {i} " + "x" * 5000} for i in range(MAX_RECORDED_SKIPS + 5)]
    _, invocation = run({"action": "skipped", "skipped": skipped})
    handler = trace_pipeline.tree(invocation.trace_header.root, expect_at_least=3).find("## lambda_handler")[0]
    assert handler.document["annotations"]["probe_skipped"] == MAX_RECORDED_SKIPS + 5  # all of them counted
    listed = handler.document["metadata"]["skipped"]
    assert [entry["index"] for entry in listed["records"]] == list(range(MAX_RECORDED_SKIPS)) and listed["omitted"] == 5
    assert all(len(entry["reason"]) == MAX_SKIP_FIELD_CHARS for entry in listed["records"])
    assert listed["records"][0]["reason"].startswith("field 0 xxx")

    _, invocation = run({"action": "skipped", "skipped": []})
    handler = trace_pipeline.tree(invocation.trace_header.root, expect_at_least=3).find("## lambda_handler")[0]
    assert handler.document["annotations"]["probe_skipped"] == 0
    assert "skipped" not in handler.document.get("metadata", {})


STEP = "## tests.fixtures.probe_handler.step_of_calls"


def received_documents(pipeline: TracePipeline, trace_id: str) -> list[dict[str, Any]]:
    """The trace's documents as the daemon received them (nested subsegments left nested)."""
    pipeline.settle()
    traces = pipeline.xray.batch_get_traces(TraceIds=[trace_id])["Traces"]
    return [json.loads(segment["Document"]) for trace in traces for segment in trace["Segments"]]


def calls_under(node: Any) -> list[str]:
    return [child.document["aws"]["operation"] for child in node.children if child.document.get("namespace") == "aws"]


@pytest.mark.req("FR-029", "FR-058")
def test_each_call_is_sent_the_moment_it_closes_so_a_crash_later_loses_none(
        run: Any, trace_pipeline: TracePipeline) -> None:
    """The SDK's Lambda mode (streaming threshold 0): nothing completed waits for its step."""
    result, invocation = run({"action": "step", "calls": 3})
    assert result == {"calls": 3}

    tree = trace_pipeline.tree(invocation.trace_header.root, expect_at_least=7)
    [step] = tree.find(STEP)
    assert calls_under(step) == ["ListTables"] * 3
    assert step.document["parent_id"] == tree.find("## lambda_handler")[0].id
    assert document_problems(tree) == []
    received = received_documents(trace_pipeline, invocation.trace_header.root)
    sent_alone = [document for document in received if document.get("namespace") == "aws"]
    assert [document["parent_id"] for document in sent_alone] == [step.id] * 3
    [step_document] = [document for document in received if document["name"] == STEP]
    assert "subsegments" not in step_document


@pytest.mark.req("FR-005", "FR-018", "FR-029")
def test_a_failing_step_arrives_as_a_fault_with_the_calls_it_completed(
        run: Any, trace_pipeline: TracePipeline) -> None:
    upstream = TraceHeader.new_root()
    with pytest.raises(RuntimeError, match="after 2 calls"):
        run({"action": "step", "calls": 5, "fail_after": 2}, upstream=upstream)

    tree = trace_pipeline.tree(upstream.root, expect_at_least=6)
    [step] = tree.find(STEP)
    assert step.document["fault"] is True
    assert step.document["cause"]["exceptions"][0]["type"] == "RuntimeError"
    assert calls_under(step) == ["ListTables"] * 2
    assert document_problems(tree) == []
