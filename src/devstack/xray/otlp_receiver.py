"""A local stand-in for the ADOT collector: OTLP/HTTP receiver on 4318 → X-Ray documents (FR-064).

Spans are converted as the `awsxray` exporter of the pinned collector converts them. The SSE image
pins the ADOT collector layer `aws-otel-collector-amd64-ver-0-117-0` (docker/sse/collector-layer.lock),
which bundles opentelemetry-collector-contrib v0.117.0 (the layer name carries the contrib version:
https://aws-otel.github.io/docs/ReleaseBlogs/aws-distro-for-opentelemetry-lambda-layer-patched-v0.42.0).
Read in open-telemetry/opentelemetry-collector-contrib, exporter/awsxrayexporter/internal/translator/
(the aws-sdk-go v1 generation of the files, which v0.117.0 ships; today's main agrees on every point):

- segment.go `MakeSegment`: a span with a parent whose kind is not SERVER is a subsegment (CONSUMER
  and PRODUCER included); the name order (peer.service, aws.service, service.name for SERVER spans
  only, rpc.service, the span name cleaned by `fixSegmentName`); `namespace` aws for
  `rpc.system=aws-api`, remote for other CLIENT spans.
- segment.go `makeXRayAttributes`: indexed attributes become annotations under `fixAnnotationKey`,
  which keeps dots while the feature gate `exporter.xray.allowDot` is on: registered v0.97.0, moved to
  beta, i.e. on by default, by open-telemetry/opentelemetry-collector-contrib#32694 (merged 2024-04,
  before v0.117.0), so `a.b` stays `a.b`; every other character outside [A-Za-z0-9] becomes `_`. An
  indexed attribute that is no string, number or bool is dropped. Segments (never subsegments)
  carry the resource as metadata `otel.resource.<key>`; the rest goes to metadata `default`.
- cause.go `makeCause`: fault / error / throttle from `http.status_code` (else
  `http.response.status_code`) in 400..599 whatever the span status (429 is also throttle); without
  one, fault = status ERROR. `cause` from `exception` events (`remote` for CLIENT/PRODUCER, Python
  frames innermost first, all of them), else from the status message.
- aws.go `makeAws`: `aws.operation` (else `rpc.method`), the table name(s), `xray.sdk`
  (`<telemetry.sdk.name> for <language>`), the account; those attributes leave the metadata.
- The receiver's request limit: confighttp's default `max_request_body_size`, 20 MiB
  (open-telemetry/opentelemetry-collector, config/confighttp/confighttp.go
  `defaultMaxRequestBodySize`); larger bodies are refused with 413.

Not converted: http request fields (method, url, user agent: our spans set none), span links,
SQL, `aws.local/remote.*` attributes, Java/JS/.NET/Go stack formats, chained Python exceptions.
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

from devstack.loopback import LoopbackServer, send_reply
from devstack.xray.segment_sink import SegmentSink
from lib.tracing.annotations import AnnotationValue
from lib.tracing.header import new_entity_id

log = logging.getLogger("devstack.xray.otlp_receiver")

MAX_BODY_BYTES = 20 * 1024 * 1024  # confighttp defaultMaxRequestBodySize (module docstring)
MAX_SEGMENT_NAME_CHARS = 200  # segment.go maxSegmentNameLength
TRACES_PATH = "/v1/traces"


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


def _python_stack(stacktrace: str) -> list[dict[str, Any]]:
    """Frames of a Python traceback as cause.go `fillPythonStacktrace` reads them: from the line before the
    last one upwards, each `  File "<path>", line <n>, in <label>` line (three comma-separated parts), so
    innermost first and every frame. Chained exceptions ("During handling ...") are not split out here."""
    frames = []
    for line in reversed(stacktrace.split("\n")[:-1]):
        parts = line.split(",")
        if not line.startswith("  File ") or len(parts) != 3:
            continue
        number = parts[1][len(" line "):] if parts[1].startswith(" line ") else ""
        frames.append({"path": parts[0][len('  File "'):-1], "line": int(number) if number.isdigit() else 0,
                       "label": parts[2][len(" in "):] if parts[2].startswith(" in ") else ""})
    return frames


def _status_flags(span: Span, attributes: dict[str, Any]) -> dict[str, bool]:
    """fault / error / throttle as cause.go `makeCause` sets them: from `http.status_code` (else
    `http.response.status_code`) when it is 400..599, whatever the span status; else fault = status ERROR."""
    code = attributes.get("http.status_code", attributes.get("http.response.status_code"))
    code = code if isinstance(code, int) and not isinstance(code, bool) else None
    if code is not None and 400 <= code <= 499:
        return {"fault": False, "error": True, "throttle": code == 429}
    if code is not None and 500 <= code <= 599:
        return {"fault": True, "error": False, "throttle": False}
    return {"fault": span.status.code == Status.STATUS_CODE_ERROR, "error": False, "throttle": False}


def annotation_key(key: str) -> str:
    """segment.go `fixAnnotationKey` with the `exporter.xray.allowDot` gate on (its default since it went
    beta): letters, digits and dots are kept, every other character becomes `_`."""
    return "".join(char if (char.isascii() and char.isalnum()) or char == "." else "_" for char in key)


def _annotation_value(value: Any) -> AnnotationValue | None:
    return value if isinstance(value, str | int | float | bool) else None


def span_to_document(span: Span, resource: dict[str, Any], indexed_attributes: Collection[str]) -> dict[str, Any]:
    """One OTel span as one X-Ray segment document, as the pinned exporter's `MakeSegment` builds it
    (exporter/awsxrayexporter/internal/translator/segment.go at v0.117.0; this module's docstring)."""
    attributes = _attributes(span.attributes)
    # segment.go: every span with a parent that is not SERVER is a subsegment, CONSUMER included; only
    # segments (the local root) carry the resource.
    is_subsegment = bool(span.parent_span_id) and span.kind != Span.SPAN_KIND_SERVER
    document: dict[str, Any] = {
        "id": span.span_id.hex(),
        "trace_id": xray_trace_id(span.trace_id),
        "name": _segment_name(span, attributes, resource),
        "start_time": span.start_time_unix_nano / 1e9,
        "end_time": span.end_time_unix_nano / 1e9,
        **_status_flags(span, attributes),
    }
    if span.parent_span_id:
        document["parent_id"] = span.parent_span_id.hex()
    if is_subsegment:
        document["type"] = "subsegment"
    aws, consumed = _aws_data(attributes, resource)
    if aws:
        document["aws"] = aws
    if attributes.get("rpc.system") == "aws-api":
        document["namespace"] = "aws"
    elif span.kind == Span.SPAN_KIND_CLIENT:
        document["namespace"] = "remote"
    status_code = attributes.get("http.status_code", attributes.get("http.response.status_code"))
    if isinstance(status_code, int):
        document["http"] = {"response": {"status": status_code}}
    exceptions = [_attributes(event.attributes) for event in span.events if event.name == "exception"]
    remote = span.kind in (Span.SPAN_KIND_CLIENT, Span.SPAN_KIND_PRODUCER)
    python = resource.get("telemetry.sdk.language") == "python"
    if exceptions:
        document["cause"] = {"exceptions": [
            {"id": new_entity_id(), "type": str(item.get("exception.type", "")),
             "message": str(item.get("exception.message", "")), "remote": remote,
             **({"stack": stack} if python and (stack := _python_stack(str(item.get("exception.stacktrace", ""))))
                else {})}
            for item in exceptions]}
    elif span.status.code == Status.STATUS_CODE_ERROR and span.status.message:
        document["cause"] = {"exceptions": [{"id": new_entity_id(), "type": "", "message": span.status.message}]}
    annotations: dict[str, Any] = {}
    metadata: dict[str, Any] = {}
    if not is_subsegment:  # segment.go makeXRayAttributes: the resource, on segments only
        for key, value in resource.items():
            resource_key = f"otel.resource.{key}"
            annotated = _annotation_value(value) if resource_key in indexed_attributes else None
            if annotated is not None:
                annotations[annotation_key(resource_key)] = annotated
            else:
                metadata[resource_key] = value
    for key, value in attributes.items():
        if key in consumed:
            continue
        annotated = _annotation_value(value) if key in indexed_attributes else None
        if key in indexed_attributes:
            if annotated is not None:
                annotations[annotation_key(key)] = annotated
            continue  # an indexed attribute of another type is dropped, not kept as metadata
        metadata[key] = value
    if annotations:
        document["annotations"] = annotations
    if metadata:
        document["metadata"] = {"default": metadata}
    return document


# aws.go makeAws: the span attributes it takes into `aws` (and out of metadata).
_AWS_ATTRIBUTES = {"rpc.method", "aws.operation", "aws.account_id", "aws.region", "aws.request_id", "aws.requestId",
                   "aws.queue_url", "aws.queue.url", "aws.table_name", "aws.table.name"}


def _aws_data(attributes: dict[str, Any], resource: dict[str, Any]) -> tuple[dict[str, Any], set[str]]:
    """The segment's `aws` object as aws.go `makeAws` builds it for a Lambda resource, and the attributes
    it consumed (http status codes too: http.go `makeHTTP` takes them into `http`)."""
    aws: dict[str, Any] = {}
    operation = attributes.get("aws.operation", attributes.get("rpc.method"))
    if operation:
        aws["operation"] = operation
    tables = attributes.get("aws.dynamodb.table_names")
    if isinstance(tables, list) and len(tables) == 1:
        aws["table_name"] = tables[0]
    elif isinstance(tables, list) and len(tables) > 1:
        aws["table_names"] = tables
    if resource.get("cloud.account.id"):
        aws["account_id"] = resource["cloud.account.id"]
    sdk, language = str(resource.get("telemetry.sdk.name", "")), str(resource.get("telemetry.sdk.language", ""))
    if sdk and language and not sdk.lower().endswith(f" for {language.lower()}"):
        sdk = f"{sdk} for {language}"
    if sdk or resource.get("telemetry.sdk.version"):
        versions = (("sdk", sdk), ("sdk_version", resource.get("telemetry.sdk.version")))
        aws["xray"] = {key: value for key, value in versions if value}
    return aws, _AWS_ATTRIBUTES | {"http.status_code", "http.response.status_code"}


def _fix_segment_name(name: str) -> str:
    """segment.go `fixSegmentName`: characters X-Ray does not allow in a name removed, at most 200, else "span"."""
    kept = "".join(char for char in name if char.isalpha() or char in "0123456789 _.:/%&#=+-@")
    return kept[:MAX_SEGMENT_NAME_CHARS] or "span"


def _segment_name(span: Span, attributes: dict[str, Any], resource: dict[str, Any]) -> str:
    """segment.go's name order, for the attributes our spans can carry: peer.service, aws.service, the
    resource's service.name (SERVER spans only), rpc.service, the span name."""
    for candidate in (attributes.get("peer.service"), attributes.get("aws.service")):
        if candidate:
            return str(candidate)
    if span.kind == Span.SPAN_KIND_SERVER and resource.get("service.name"):  # a SERVER span only
        return str(resource["service.name"])
    if attributes.get("rpc.service"):
        return str(attributes["rpc.service"])
    return _fix_segment_name(span.name)


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
        send_reply(request, status, body, content_type)

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
