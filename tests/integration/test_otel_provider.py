"""The SSE Lambda's OTel provider (src/lib/tracing/otel.py), through the real OTLP receiver."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
from opentelemetry import propagate
from opentelemetry.propagators.aws import AwsXRayLambdaPropagator
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.trace.sampling import ParentBased

from devstack.lambda_.events import function_url_event
from devstack.lambda_.invocation import invoke_in_process, lambda_environment
from devstack.stack import SRC_ROOT, FunctionSpec, load_stack
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import document_problems
from lib.tracing import otel
from lib.tracing.bounds import MAX_MESSAGE_CHARS
from lib.tracing.header import TraceHeader, new_entity_id

PROBE = FunctionSpec("probe_stream", "tests.fixtures.probe_stream_handler.lambda_handler", "image", 1024, 900, {},
                     {}, None)


@pytest.fixture
def run(trace_pipeline: TracePipeline) -> Any:
    def call(event: dict[str, Any], upstream: TraceHeader | None = None) -> Any:
        return invoke_in_process(PROBE, event, {}, trace_pipeline.daemon.address, upstream)

    return call


def _span_documents(trace_pipeline: TracePipeline, trace_id: str, count: int) -> list[dict[str, Any]]:
    tree = trace_pipeline.tree(trace_id, expect_at_least=count)
    return [doc for doc in tree.documents if doc.get("origin") is None]


@pytest.mark.req("FR-001", "FR-026", "FR-027", "FR-059", "SC-023", "SC-010")
def test_spans_are_children_of_the_invocation_facade(run: Any, trace_pipeline: TracePipeline) -> None:
    result, invocation = run({"cycles": 2})
    assert result["trace_id"] == invocation.trace_header.root.replace("-", "")[1:]
    tree = trace_pipeline.tree(invocation.trace_header.root, expect_at_least=5)
    stream = next(doc for doc in tree.documents if doc["name"] == "probe.stream")
    assert stream["parent_id"] == invocation.function_segment_id
    polls = [doc for doc in tree.documents if doc.get("namespace") == "aws"]
    assert len(polls) == 2 and all(doc["parent_id"] == stream["id"] for doc in polls)
    assert polls[0]["name"] == "DynamoDB"
    assert document_problems(tree) == []


@pytest.mark.req("FR-059", "SC-026")
def test_a_warm_second_invocation_carries_its_own_trace_id(run: Any, trace_pipeline: TracePipeline) -> None:
    first, _ = run({})
    second, second_invocation = run({})
    assert first["trace_id"] != second["trace_id"]
    assert second["trace_id"] == second_invocation.trace_header.root.replace("-", "")[1:]
    docs = _span_documents(trace_pipeline, second_invocation.trace_header.root, 4)
    assert {doc["trace_id"] for doc in docs} == {second_invocation.trace_header.root}


@pytest.mark.req("FR-056")
def test_sampled_zero_from_the_runtime_means_no_spans(run: Any, trace_pipeline: TracePipeline) -> None:
    upstream = TraceHeader.new_root().with_parent("53995c3f42cd8ad8", sampled=False)
    result, invocation = run({"cycles": 3}, upstream=upstream)
    assert result["sampled"] is False
    assert trace_pipeline.documents(invocation.trace_header.root) == []


def _process_threads() -> int:
    """Threads of the code under test: the local receiver's per-connection threads are not ours."""
    return sum(1 for t in threading.enumerate() if "process_request_thread" not in t.name)


@pytest.mark.req("FR-065", "FR-077", "SC-027")
def test_one_provider_per_environment_and_no_thread_per_invocation(run: Any) -> None:
    run({})
    provider = otel.tracer_provider()
    threads_before = _process_threads()
    for _ in range(1000):
        run({"cycles": 0})
    assert otel.tracer_provider() is provider
    assert _process_threads() == threads_before
    assert provider._atexit_handler is None  # shutdown_on_exit=False: no atexit flush racing the freeze


@pytest.mark.req("FR-052", "FR-053", "FR-056", "FR-068", "FR-073")
def test_provider_configuration(run: Any) -> None:
    run({})
    provider = otel.tracer_provider()
    assert isinstance(propagate.get_global_textmap(), AwsXRayLambdaPropagator)
    assert "OTEL_PROPAGATORS" not in os.environ
    assert isinstance(provider.id_generator, AwsXRayIdGenerator)
    assert isinstance(provider.sampler, ParentBased)
    processor = provider._active_span_processor._span_processors[0]
    batch = processor._batch_processor
    assert batch._max_queue_size == otel.MAX_QUEUE_SIZE
    assert otel.MAX_QUEUE_SIZE >= 2 * (otel.MAX_STREAM_SECONDS // otel.MIN_POLL_INTERVAL_S) * otel.SPANS_PER_POLL_CYCLE
    assert batch._max_export_batch_size == 64 and batch._schedule_delay == 1.0


@pytest.mark.req("FR-047", "FR-071", "FR-072", "SC-030")
def test_resource_carries_the_service_name_and_lambda_attributes(trace_pipeline: TracePipeline) -> None:
    env = {"OTEL_SERVICE_NAME": "sentiment-analyzer-sse_streaming",
           "POWERTOOLS_SERVICE_NAME": "sentiment-analyzer-sse_streaming",
           "AWS_LAMBDA_FUNCTION_NAME": "sentiment-analyzer-local-sse_streaming",
           "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
           "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "1024", "AWS_LAMBDA_LOG_STREAM_NAME": "stream"}
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        provider, _ = otel.build_provider(trace_pipeline.receiver.endpoint)
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "sentiment-analyzer-sse_streaming"
        assert attributes["cloud.provider"] == "aws" and attributes["faas.name"] == env["AWS_LAMBDA_FUNCTION_NAME"]
        os.environ["POWERTOOLS_SERVICE_NAME"] = "something-else"
        with pytest.raises(otel.ServiceNameMismatchError):
            otel.build_provider(trace_pipeline.receiver.endpoint)
    finally:
        for key, value in saved.items():
            os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)


@pytest.mark.req("FR-058", "FR-067", "SC-028")
def test_recorded_exceptions_are_bounded_and_mark_the_span(run: Any, trace_pipeline: TracePipeline) -> None:
    _, invocation = run({"raise": "x" * 100_000})
    tree = trace_pipeline.tree(invocation.trace_header.root, expect_at_least=5)
    failed = next(doc for doc in tree.documents if doc["name"] == "probe.fail")
    assert failed["fault"] is True
    assert len(failed["cause"]["exceptions"][0]["message"]) <= MAX_MESSAGE_CHARS


def _flush_duration(endpoint: str, spans: int = 200) -> tuple[float, bool]:
    provider, exporter = otel.build_provider(endpoint)
    tracer = provider.get_tracer("flush-test")
    for index in range(spans):
        tracer.start_span(f"span-{index}").end()
    started = time.monotonic()
    flushed = provider.force_flush()
    elapsed = time.monotonic() - started
    assert exporter.dropped_spans == spans  # counted, for the canary's aggregate view (FR-066)
    provider.shutdown()
    return elapsed, flushed


@pytest.mark.req("FR-055", "FR-066", "SC-031")
def test_flush_with_the_collector_down_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "probe")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "probe")
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    elapsed, flushed = _flush_duration(f"http://127.0.0.1:{port}/v1/traces")
    assert flushed is True  # OTel reports success whatever happened: detection is the canary's job
    # Stock exporter settings took 6.6-7.3 s here; the bound is one export timeout plus overhead.
    assert elapsed < otel.EXPORT_TIMEOUT_S + 1.5


@pytest.mark.req("FR-055", "SC-031")
def test_flush_with_the_collector_hanging_is_bounded(
    monkeypatch: pytest.MonkeyPatch, trace_pipeline: TracePipeline
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "probe")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "probe")
    trace_pipeline.receiver.hang.set()
    try:
        elapsed, _ = _flush_duration(trace_pipeline.receiver.endpoint)
    finally:
        trace_pipeline.receiver.hang.clear()
    assert elapsed < otel.EXPORT_TIMEOUT_S + 1.5


# The SSE function in a fresh interpreter, as its execution environment runs it: init, one
# invocation, the first frame of the body; then the runtime closes the body, whose `finally` flushes.
FIRST_BYTE_THEN_CLOSE = """
import importlib, json, sys
EXPORTER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
DEFERRED = (EXPORTER, "requests", "boto3", "botocore.session")
handler = importlib.import_module(sys.argv[1]).lambda_handler
class Context:
    aws_request_id = "first-export"
    function_name = "sse"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sse"
    def get_remaining_time_in_millis(self):
        return 60000
response = handler(json.loads(sys.argv[2]), Context())
first = next(iter(response.body))
loaded_at_first_byte = sorted(name for name in DEFERRED if name in sys.modules)
response.body.close()
print(json.dumps({"first": first.decode(), "at_first_byte": loaded_at_first_byte,
                  "after_close": EXPORTER in sys.modules}))
"""


@pytest.mark.req("FR-054", "FR-055", "FR-065")
def test_the_otlp_exporter_is_imported_at_the_first_export_and_exports(
    invoke: Any, trace_pipeline: TracePipeline
) -> None:
    """Cold start to the first byte does not import the OTLP/HTTP exporter (nor `requests`); the
    first flush imports it, and the stream's spans reach the real OTLP receiver. No AWS client
    exists yet either: boto3 is for a config stream's or a canary probe's authorisation only, and
    in Lambda (LAMBDA_TASK_ROOT set) the X-Ray SDK's recorder samples locally, creating no
    sampling-service client (aws-xray-sdk-python, aws_xray_sdk/core/recorder.py)."""
    spec = load_stack().function("sse_streaming")
    upstream = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
    env = {**os.environ, **lambda_environment(spec, invoke.env("sse_streaming"), trace_pipeline.daemon.address),
           "_X_AMZN_TRACE_ID": upstream.format(), "PYTHONPATH": str(SRC_ROOT)}
    event = json.dumps(function_url_event("GET", "/api/v2/stream", {}))
    result = subprocess.run([sys.executable, "-c", FIRST_BYTE_THEN_CLOSE, spec.handler.rpartition(".")[0], event],
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["first"].startswith("retry:")
    assert report["at_first_byte"] == []
    assert report["after_close"] is True
    tree = trace_pipeline.tree(upstream.root, expect_at_least=3)  # the handler phase writes 2 (X-Ray SDK)
    names = {doc["name"] for doc in tree.documents}
    assert "sse.global_stream" in names, names
