"""A local stand-in for the ADOT collector: OTLP/HTTP receiver on 4318 → X-Ray documents (FR-064).

Spans are converted the way the collector's `awsxray` exporter converts them: X-Ray trace ids
(`1-<8 hex>-<24 hex>`), parent ids, `namespace: aws` for `db.system=dynamodb` and
`rpc.system=aws-api` spans, `fault`/`error`/`throttle` from the status, `cause` from recorded
exceptions, annotations only for the configured `indexed_attributes`, the rest as metadata.
Bad requests (truncated protobuf, wrong content type, oversized bodies) are counted and answered
with a 4xx; they never stop the receiver.

Example (not run: starts a server on loopback and needs a segment sink):
    >>> receiver = OtlpReceiver(sink, indexed_attributes={"session_id"}).start()   # doctest: +SKIP
    >>> receiver.endpoint                                                           # doctest: +SKIP
    'http://127.0.0.1:4318/v1/traces'
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import threading
import time
import zlib
from collections.abc import Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from devstack.loopback import LoopbackServer
from devstack.xray.segment_sink import SegmentSink
from lib.tracing.annotations import ANNOTATION_KEY

log = logging.getLogger("devstack.xray.otlp_receiver")

MAX_BODY_BYTES = 4 * 1024 * 1024  # the collector's default max request body
TRACES_PATH = "/v1/traces"
_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<label>.+)')


@dataclass
class ReceiverStats:
    requests: int = 0
    spans: int = 0
    bad_requests: int = 0
    invalid_spans: int = 0


def _any_value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_any_value(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: _any_value(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return value.bytes_value.hex()
    return getattr(value, kind) if kind else None


def _attributes(items: Collection[KeyValue]) -> dict[str, Any]:
    return {item.key: _any_value(item.value) for item in items}


def xray_trace_id(otel_trace_id: bytes) -> str:
    hex_id = otel_trace_id.hex()
    return f"1-{hex_id[:8]}-{hex_id[8:]}"


def _stack_frames(stacktrace: str) -> list[dict[str, Any]]:
    frames = [
        {"path": match["path"], "line": int(match["line"]), "label": match["label"].strip()}
        for match in _FRAME.finditer(stacktrace)
    ]
    return list(reversed(frames))[:10]  # X-Ray lists the innermost frame first


def span_to_document(span: Span, resource: dict[str, Any], indexed_attributes: Collection[str]) -> dict[str, Any]:
    """One OTel span as one X-Ray segment document."""
    attributes = _attributes(span.attributes)
    is_segment = not span.parent_span_id or span.kind in (Span.SPAN_KIND_SERVER, Span.SPAN_KIND_CONSUMER)
    document: dict[str, Any] = {
        "id": span.span_id.hex(),
        "trace_id": xray_trace_id(span.trace_id),
        "name": str(resource.get("service.name", "unknown_service")) if is_segment and not span.parent_span_id
        else span.name,
        "start_time": span.start_time_unix_nano / 1e9,
        "end_time": span.end_time_unix_nano / 1e9,
    }
    if span.parent_span_id:
        document["parent_id"] = span.parent_span_id.hex()
    if not is_segment:
        document["type"] = "subsegment"
    aws: dict[str, Any] = {}
    if attributes.get("db.system") == "dynamodb":
        document["namespace"] = "aws"
        document["name"] = "DynamoDB"
        aws["operation"] = attributes.get("db.operation", attributes.get("rpc.method", span.name))
        tables = attributes.get("aws.dynamodb.table_names")
        if tables:
            aws["table_name"] = tables[0] if isinstance(tables, list) else tables
    elif attributes.get("rpc.system") == "aws-api":
        document["namespace"] = "aws"
        document["name"] = str(attributes.get("rpc.service", span.name))
        aws["operation"] = attributes.get("rpc.method")
    elif span.kind == Span.SPAN_KIND_CLIENT:
        document["namespace"] = "remote"
    if aws:
        document["aws"] = aws
    if "faas.name" in resource or "cloud.provider" in resource:
        document.setdefault("aws", {})["xray"] = {"sdk": "opentelemetry for python"}
    status_code = attributes.get("http.response.status_code", attributes.get("http.status_code"))
    if status_code is not None:
        document["http"] = {"response": {"status": int(status_code)}}
    if span.status.code == Status.STATUS_CODE_ERROR:
        if status_code is not None and 400 <= int(status_code) < 500:
            document["error"] = True
            if int(status_code) == 429:
                document["throttle"] = True
        else:
            document["fault"] = True
    exceptions = [
        _attributes(event.attributes) for event in span.events if event.name == "exception"
    ]
    if exceptions:
        document["cause"] = {
            "exceptions": [
                {
                    "id": f"{index:016x}",
                    "type": str(item.get("exception.type", "")),
                    "message": str(item.get("exception.message", "")),
                    "stack": _stack_frames(str(item.get("exception.stacktrace", ""))),
                }
                for index, item in enumerate(exceptions)
            ]
        }
    annotations: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    for key, value in attributes.items():
        if key in indexed_attributes:
            annotation_key = key.replace(".", "_")  # the exporter's own key fix-up
            if ANNOTATION_KEY.match(annotation_key) and isinstance(value, str | int | float | bool):
                annotations[annotation_key] = value
                continue
        metadata[key] = value
    if annotations:
        document["annotations"] = annotations
    if metadata:
        document["metadata"] = {"default": metadata}
    return document


class OtlpReceiver:
    def __init__(
        self, sink: SegmentSink, indexed_attributes: Collection[str] = (), host: str = "127.0.0.1", port: int = 0
    ):
        self._sink = sink
        self.indexed_attributes = frozenset(indexed_attributes)
        self.stats = ReceiverStats()
        self.hang = threading.Event()  # tests: make the collector hang like a frozen extension
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

            def do_POST(self) -> None:
                receiver._handle(self)

        self._server = LoopbackServer.http(host, port, Handler, name="otlp-receiver")

    @property
    def port(self) -> int:
        return self._server.port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}{TRACES_PATH}"

    def start(self) -> OtlpReceiver:
        self._server.start()
        return self

    def stop(self) -> None:
        self.hang.clear()
        self._server.stop()

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: bytes, content_type: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", content_type)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    def _bad(self, request: BaseHTTPRequestHandler, status: int, reason: str) -> None:
        self.stats.bad_requests += 1
        log.warning("bad OTLP request: %s", reason)
        self._reply(request, status, json.dumps({"error": reason}).encode(), "application/json")

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        self.stats.requests += 1
        while self.hang.is_set():  # a hanging collector: accept, never answer while set
            time.sleep(0.05)
        if request.path != TRACES_PATH:
            self._bad(request, 404, f"unknown path {request.path}")
            return
        try:
            length = int(request.headers.get("Content-Length", ""))
        except ValueError:
            self._bad(request, 411, "Content-Length required")
            return
        if length > MAX_BODY_BYTES:
            self._bad(request, 413, f"body of {length} bytes exceeds {MAX_BODY_BYTES}")
            request.close_connection = True
            return
        body = request.rfile.read(length)
        if "application/x-protobuf" not in request.headers.get("Content-Type", ""):
            self._bad(request, 415, "only application/x-protobuf is supported")
            return
        if request.headers.get("Content-Encoding", "") == "gzip":
            try:
                body = gzip.decompress(body)
            except (OSError, EOFError, zlib.error):
                self._bad(request, 400, "body is not valid gzip")
                return
            if len(body) > MAX_BODY_BYTES:
                self._bad(request, 413, "decompressed body too large")
                return
        message = ExportTraceServiceRequest()
        try:
            message.ParseFromString(body)
        except DecodeError:
            self._bad(request, 400, "body is not an ExportTraceServiceRequest")
            return
        documents = []
        for resource_spans in message.resource_spans:
            resource = _attributes(resource_spans.resource.attributes)
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    if len(span.trace_id) != 16 or len(span.span_id) != 8:
                        self.stats.invalid_spans += 1
                        log.warning("span with malformed ids dropped")
                        continue
                    documents.append(span_to_document(span, resource, self.indexed_attributes))
        self.stats.spans += len(documents)
        for document in documents:
            self._sink.submit(json.dumps(document, separators=(",", ":"), default=str))
        self._reply(request, 200, ExportTraceServiceResponse().SerializeToString(), "application/x-protobuf")
