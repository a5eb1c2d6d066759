"""Contract: the local OTLP receiver converts spans as the pinned ADOT collector's awsxray exporter does.

Pinned: layer aws-otel-collector-amd64-ver-0-117-0 (docker/sse/collector-layer.lock), i.e.
opentelemetry-collector-contrib v0.117.0. Sources, all in open-telemetry/opentelemetry-collector-contrib:
exporter/awsxrayexporter/internal/translator/segment.go, cause.go, aws.go; the receiver's body limit in
open-telemetry/opentelemetry-collector config/confighttp/confighttp.go. Spans go through the real
receiver over HTTP and come back through the X-Ray API (BatchGetTraces on moto).
"""

from __future__ import annotations

import http.client
import time
import urllib.request
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from devstack.xray.otlp_receiver import annotation_key
from devstack.xray.pipeline import TracePipeline
from lib.tracing.header import new_entity_id, new_trace_id

SERVICE = "sentiment-analyzer-local-sse_streaming"


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _span(trace_id: str, kind: int, parent: str | None = None, status: int = Status.STATUS_CODE_UNSET,
          name: str = "sse.step", **attributes: Any) -> Span:
    now = time.time_ns()
    return Span(trace_id=bytes.fromhex(trace_id[2:10] + trace_id[11:]), span_id=bytes.fromhex(new_entity_id()),
                parent_span_id=bytes.fromhex(parent) if parent else b"", name=name, kind=kind,
                start_time_unix_nano=now, end_time_unix_nano=now + 10**6, status=Status(code=status),
                attributes=[_kv(key.replace("__", "."), value) for key, value in attributes.items()])


def _export(pipeline: TracePipeline, spans: list[Span], indexed: frozenset[str] = frozenset()) -> dict[str, dict]:
    pipeline.receiver.indexed_attributes = indexed
    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    resource_spans.resource.attributes.extend([_kv("service.name", SERVICE), _kv("cloud.provider", "aws"),
                                               _kv("telemetry.sdk.language", "python")])
    resource_spans.scope_spans.add().spans.extend(spans)
    request = urllib.request.Request(pipeline.receiver.endpoint, data=message.SerializeToString(), method="POST",
                                     headers={"Content-Type": "application/x-protobuf"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    trace_id = "1-" + spans[0].trace_id.hex()[:8] + "-" + spans[0].trace_id.hex()[8:]
    return {document["id"]: document for document in pipeline.documents(trace_id)}


@pytest.mark.req("FR-064", "FR-048")
def test_annotation_keys_keep_their_dots_under_the_allow_dot_gate(trace_pipeline: TracePipeline) -> None:
    """segment.go fixAnnotationKey with exporter.xray.allowDot on (beta, the default, since
    open-telemetry/opentelemetry-collector-contrib#32694): `.` kept, other non-alphanumerics become `_`."""
    span = _span(new_trace_id(), Span.SPAN_KIND_INTERNAL, parent=new_entity_id(),
                 sse__session_id="s-1", connection_sequence=2, **{"odd-key": "x"})
    [document] = _export(trace_pipeline, [span], frozenset({"sse.session_id", "connection_sequence",
                                                            "odd-key"})).values()
    assert document["annotations"] == {"sse.session_id": "s-1", "connection_sequence": 2, "odd_key": "x"}
    assert annotation_key("a.b@c") == "a.b_c"


@pytest.mark.req("FR-064")
@pytest.mark.parametrize("kind", [Span.SPAN_KIND_CONSUMER, Span.SPAN_KIND_PRODUCER, Span.SPAN_KIND_CLIENT,
                                  Span.SPAN_KIND_INTERNAL])
def test_every_non_server_span_with_a_parent_is_a_subsegment(trace_pipeline: TracePipeline, kind: int) -> None:
    """segment.go MakeSegment: `span.Kind() != SERVER && parent not empty` → type subsegment (CONSUMER too)."""
    parent = new_entity_id()
    [document] = _export(trace_pipeline, [_span(new_trace_id(), kind, parent=parent)]).values()
    assert document["type"] == "subsegment" and document["parent_id"] == parent


@pytest.mark.req("FR-064")
def test_a_server_span_with_a_parent_is_a_segment_named_for_the_service(trace_pipeline: TracePipeline) -> None:
    """segment.go: a SERVER span stays a segment even with a parent, named by the resource's service.name;
    any other root span is named by its span name."""
    trace_id = new_trace_id()
    server = _span(trace_id, Span.SPAN_KIND_SERVER, parent=new_entity_id(), name="GET /stream")
    internal_root = _span(trace_id, Span.SPAN_KIND_INTERNAL, name="sse.poll")
    documents = _export(trace_pipeline, [server, internal_root])
    assert "type" not in documents[server.span_id.hex()] and documents[server.span_id.hex()]["name"] == SERVICE
    assert documents[internal_root.span_id.hex()]["name"] == "sse.poll"


@pytest.mark.req("FR-067", "FR-064")
@pytest.mark.parametrize(("code", "flags"), [(404, (False, True, False)), (429, (False, True, True)),
                                             (503, (True, False, False)), (200, (False, False, False))])
def test_error_throttle_and_fault_come_from_the_http_status_without_an_error_status(
        trace_pipeline: TracePipeline, code: int, flags: tuple[bool, bool, bool]) -> None:
    """cause.go makeCause: http.status_code / http.response.status_code in 400..599 decides, whatever the span
    status; 429 is also a throttle."""
    span = _span(new_trace_id(), Span.SPAN_KIND_CLIENT, parent=new_entity_id(), http__response__status_code=code)
    [document] = _export(trace_pipeline, [span]).values()
    assert (document["fault"], document["error"], document["throttle"]) == flags
    assert document["http"]["response"]["status"] == code


@pytest.mark.req("FR-064", "FR-072")
def test_segments_carry_the_resource_as_otel_resource_metadata_subsegments_do_not(
        trace_pipeline: TracePipeline) -> None:
    """segment.go makeXRayAttributes: resource attributes, as `otel.resource.<key>` in metadata `default`, on
    segments only (storeResource is false for subsegments)."""
    trace_id = new_trace_id()
    root = _span(trace_id, Span.SPAN_KIND_SERVER)
    child = _span(trace_id, Span.SPAN_KIND_INTERNAL, parent=root.span_id.hex())
    documents = _export(trace_pipeline, [root, child])
    assert documents[root.span_id.hex()]["metadata"]["default"]["otel.resource.service.name"] == SERVICE
    assert "metadata" not in documents[child.span_id.hex()]


@pytest.mark.req("FR-064")
def test_the_receiver_takes_bodies_up_to_the_collectors_20_mib(trace_pipeline: TracePipeline) -> None:
    """confighttp defaultMaxRequestBodySize = 20 MiB: a 6 MiB export (150 spans of 40 KB, each document under
    X-Ray's 64 KB) is accepted whole, a 20 MiB + 1 one refused 413."""
    trace_id, parent = new_trace_id(), new_entity_id()
    spans = [_span(trace_id, Span.SPAN_KIND_INTERNAL, parent=parent, payload="x" * (40 * 1024)) for _ in range(150)]
    assert len(_export(trace_pipeline, spans)) == 150
    connection = http.client.HTTPConnection("127.0.0.1", trace_pipeline.receiver.port, timeout=5)
    connection.putrequest("POST", "/v1/traces")
    connection.putheader("Content-Type", "application/x-protobuf")
    connection.putheader("Content-Length", str(20 * 1024 * 1024 + 1))
    connection.endheaders()
    try:
        assert connection.getresponse().status == 413
    finally:
        connection.close()
