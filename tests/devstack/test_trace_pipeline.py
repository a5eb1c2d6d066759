"""The local trace pipeline itself: daemon and OTLP receiver, with good and bad input."""

from __future__ import annotations

import gzip
import http.client
import json
import socket
import time
import urllib.error
import urllib.request
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import document_problems, read_traces, render
from lib.tracing.header import new_entity_id, new_trace_id

HEADER = b'{"format":"json","version":1}\n'


def _segment(trace_id: str, parent: str | None = None, **extra: Any) -> dict[str, Any]:
    now = time.time()
    doc = {"name": "probe", "id": new_entity_id(), "trace_id": trace_id, "start_time": now, "end_time": now + 0.01}
    if parent:
        doc.update(parent_id=parent, type="subsegment")
    doc.update(extra)
    return doc


def _send(daemon_port: int, payloads: list[bytes]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        for payload in payloads:
            udp.sendto(payload, ("127.0.0.1", daemon_port))


@pytest.mark.req("SC-010")
def test_daemon_stores_documents_and_records_them(trace_pipeline: TracePipeline) -> None:
    trace_id = new_trace_id()
    root = _segment(trace_id)
    child = _segment(trace_id, parent=root["id"], name="child")
    _send(trace_pipeline.daemon.port, [HEADER + json.dumps(doc).encode() for doc in (root, child)])
    tree = trace_pipeline.tree(trace_id, expect_at_least=2)
    assert [node.document["name"] for node in tree.nodes()] == ["probe", "child"]
    assert document_problems(tree) == []
    assert "- probe" in render(tree) and "  - child" in render(tree)
    record = trace_pipeline.sink._record_path.read_text()  # type: ignore[union-attr]
    assert root["id"] in record and child["id"] in record


@pytest.mark.req("FR-018")
def test_daemon_counts_garbage_and_keeps_running(trace_pipeline: TracePipeline) -> None:
    before = trace_pipeline.daemon.stats.malformed
    _send(trace_pipeline.daemon.port, [b"garbage", HEADER + b"{not json", b'{"format":"xml"}\n{}', b"\xff\xfe\n\x00"])
    trace_id = new_trace_id()
    _send(trace_pipeline.daemon.port, [HEADER + json.dumps(_segment(trace_id)).encode()])
    assert len(trace_pipeline.tree(trace_id).documents) == 1
    assert trace_pipeline.daemon.stats.malformed - before == 4


@pytest.mark.req("FR-058", "SC-025")
def test_sink_refuses_documents_x_ray_would_refuse(trace_pipeline: TracePipeline) -> None:
    before = (trace_pipeline.sink.stats.invalid, trace_pipeline.sink.stats.oversized)
    trace_id = new_trace_id()
    missing_name = {"id": new_entity_id(), "trace_id": trace_id, "start_time": 1.0, "end_time": 2.0}
    trace_pipeline.sink.submit(json.dumps(missing_name))
    trace_pipeline.sink.submit(json.dumps(_segment(trace_id, metadata={"default": {"body": "x" * 70_000}})))
    trace_pipeline.settle()
    assert trace_pipeline.documents(trace_id) == []
    after = (trace_pipeline.sink.stats.invalid, trace_pipeline.sink.stats.oversized)
    assert (after[0] - before[0], after[1] - before[1]) == (1, 1)


@pytest.mark.req("SC-010")
def test_daemon_loses_nothing_at_2000_subsegments_per_second(trace_pipeline: TracePipeline) -> None:
    trace_id = new_trace_id()
    root = _segment(trace_id)
    payloads = [HEADER + json.dumps(root).encode()]
    payloads += [HEADER + json.dumps(_segment(trace_id, parent=root["id"], name=f"s{i}")).encode() for i in range(1999)]
    before = trace_pipeline.daemon.stats.datagrams
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        started = time.monotonic()
        for index, payload in enumerate(payloads):  # paced at 2,000/s in 20 ms slices, like a busy host
            udp.sendto(payload, ("127.0.0.1", trace_pipeline.daemon.port))
            if index % 40 == 39:
                time.sleep(max(0.0, started + (index + 1) / 2000 - time.monotonic()))
    trace_pipeline.settle(30)
    assert trace_pipeline.daemon.stats.datagrams - before == 2000
    assert len(read_traces(trace_pipeline.xray, [trace_id])[0].documents) == 2000


def _kv(key: str, value: Any) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, int):
        return KeyValue(key=key, value=AnyValue(int_value=value))
    if isinstance(value, list):
        from opentelemetry.proto.common.v1.common_pb2 import ArrayValue

        items = ArrayValue(values=[AnyValue(string_value=v) for v in value])
        return KeyValue(key=key, value=AnyValue(array_value=items))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def _request(trace_hex: str, spans: list[Span]) -> bytes:
    message = ExportTraceServiceRequest()
    resource_spans = message.resource_spans.add()
    resource_spans.resource.attributes.extend([_kv("service.name", "sentiment-analyzer-local-sse_streaming"),
                                               _kv("telemetry.sdk.name", "opentelemetry"),
                                               _kv("telemetry.sdk.language", "python")])
    resource_spans.scope_spans.add().spans.extend(spans)
    return message.SerializeToString()


def _post(endpoint: str, body: bytes, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(endpoint, data=body, method="POST",
                                     headers={"Content-Type": "application/x-protobuf", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


@pytest.mark.req("FR-064", "FR-067", "SC-028")
def test_receiver_converts_spans_as_the_awsxray_exporter_does(
    trace_pipeline: TracePipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(trace_pipeline.receiver, "indexed_attributes", frozenset({"session_id", "cache_hit"}))
    trace_bytes, facade, stream_id, poll_id, put_id = bytes.fromhex("6b0697aa" + "ab" * 12), "cd" * 8, "01" * 8, \
        "02" * 8, "03" * 8
    now = time.time_ns()
    stream = Span(trace_id=trace_bytes, span_id=bytes.fromhex(stream_id), parent_span_id=bytes.fromhex(facade),
                  name="sse.stream", kind=Span.SPAN_KIND_INTERNAL,
                  start_time_unix_nano=now, end_time_unix_nano=now + 10**6,
                  attributes=[_kv("session_id", "s-1"), _kv("client.disconnected", True)])
    poll = Span(trace_id=trace_bytes, span_id=bytes.fromhex(poll_id), parent_span_id=bytes.fromhex(stream_id),
                name="sse.poll", kind=Span.SPAN_KIND_CLIENT, start_time_unix_nano=now, end_time_unix_nano=now + 10**5,
                attributes=[_kv("rpc.system", "aws-api"), _kv("rpc.service", "DynamoDB"), _kv("rpc.method", "Query"),
                            _kv("db.system", "dynamodb"), _kv("aws.dynamodb.table_names", ["news"]),
                            _kv("cache_hit", False)])
    put = Span(trace_id=trace_bytes, span_id=bytes.fromhex(put_id), parent_span_id=bytes.fromhex(stream_id),
               name="PutMetricData", kind=Span.SPAN_KIND_CLIENT,
               start_time_unix_nano=now, end_time_unix_nano=now + 10**5,
               attributes=[_kv("rpc.system", "aws-api"), _kv("rpc.service", "CloudWatch"),
                           _kv("rpc.method", "PutMetricData")],
               status=Status(code=Status.STATUS_CODE_ERROR))
    put.events.add(name="exception", attributes=[_kv("exception.type", "ClientError"),
                                                 _kv("exception.message", "denied"),
                                                 _kv("exception.stacktrace", 'Traceback (most recent call last):\n'
                                                     '  File "a.py", line 3, in f\nClientError: denied')])
    assert _post(trace_pipeline.receiver.endpoint, _request("", [stream, poll, put])) == 200
    documents = {doc["id"]: doc for doc in trace_pipeline.documents("1-6b0697aa-" + "ab" * 12)}
    assert documents[stream_id]["parent_id"] == facade and documents[stream_id]["type"] == "subsegment"
    assert documents[stream_id]["annotations"] == {"session_id": "s-1"}
    assert documents[stream_id]["metadata"]["default"]["client.disconnected"] is True
    assert documents[poll_id]["namespace"] == "aws" and documents[poll_id]["name"] == "DynamoDB"
    assert documents[poll_id]["aws"]["table_name"] == "news"
    assert documents[poll_id]["annotations"] == {"cache_hit": False}
    assert documents[put_id]["name"] == "CloudWatch" and documents[put_id]["aws"]["operation"] == "PutMetricData"
    assert documents[put_id]["fault"] is True
    assert documents[put_id]["cause"]["exceptions"][0]["stack"] == [{"path": "a.py", "line": 3, "label": "f"}]


@pytest.mark.req("FR-018")
@pytest.mark.parametrize(
    ("body", "headers", "status"),
    [
        (b"\x0a\xff\xff\xff", {}, 400),                                   # truncated protobuf
        (b"not gzip", {"Content-Encoding": "gzip"}, 400),
        (b"{}", {"Content-Type": "application/json"}, 415),
        (gzip.compress(b"\x00" * (21 * 1024 * 1024)), {"Content-Encoding": "gzip"}, 413),  # zip bomb-ish
    ],
)
def test_receiver_answers_bad_requests_with_4xx_and_keeps_serving(
    trace_pipeline: TracePipeline, body: bytes, headers: dict[str, str], status: int
) -> None:
    before = trace_pipeline.receiver.stats.bad_requests
    assert _post(trace_pipeline.receiver.endpoint, body, headers) == status
    assert trace_pipeline.receiver.stats.bad_requests == before + 1
    assert _post(trace_pipeline.receiver.endpoint, ExportTraceServiceRequest().SerializeToString()) == 200


@pytest.mark.req("FR-018")
def test_receiver_refuses_oversized_bodies_before_reading_them(trace_pipeline: TracePipeline) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", trace_pipeline.receiver.port, timeout=5)
    connection.putrequest("POST", "/v1/traces")
    connection.putheader("Content-Type", "application/x-protobuf")
    connection.putheader("Content-Length", str(20 * 1024 * 1024 + 1))  # confighttp: 20 MiB
    connection.endheaders()  # the body is never sent: the receiver answers from the length alone
    assert connection.getresponse().status == 413
    connection.close()
