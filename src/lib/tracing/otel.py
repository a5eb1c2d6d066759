"""OpenTelemetry for the SSE Lambda's streaming phase: one provider, per-invocation context, bounded flush.

In RESPONSE_STREAM mode the stream runs after the handler returned, where the X-Ray SDK cannot
follow (FR-026/027), so the stream is traced with OTel spans exported over OTLP/HTTP to the ADOT
collector extension on localhost:4318 (FR-054), which forwards them to X-Ray (FR-064).

Lifecycle (explicit, per execution environment):
    1. `tracer_provider()` builds the one provider at module level on first use (FR-065) and
       installs the global propagator (FR-052). Its exporter's configuration (endpoint, timeout)
       is fixed there; the OTLP/HTTP exporter itself is imported and built at the first export
       (`OtlpExporterAtFirstExport`), which comes after the stream's first byte.
    2. per invocation: `with invocation_context():` extracts `_X_AMZN_TRACE_ID` (set by the
       runtime for this invocation, FR-059) and attaches it as the parent of every span.
    3. `flush()` in the generator's `finally` and each poll cycle (FR-055), bounded.

Example:
    >>> with invocation_context():                                   # doctest: +SKIP
    ...     with stream_tracer().start_as_current_span("sse.poll") as span:
    ...         set_annotations(span, {"item_count": 3})
    >>> flush()                                                      # doctest: +SKIP
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager

from botocore.exceptions import ClientError
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.aws import AwsXRayLambdaPropagator
from opentelemetry.sdk.extension.aws.resource import AwsLambdaResourceDetector
from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from lib.tracing.annotations import AnnotationValue, validate_annotations
from lib.tracing.bounds import MAX_STACK_FRAMES, bound_attribute

COLLECTOR_TRACES_ENDPOINT = "http://localhost:4318/v1/traces"  # FR-054: the ADOT extension's receiver

# FR-055 / specs/design.md: force_flush() ignores its timeout (opentelemetry-python #4568); the exporter's
# own timeout is what bounds a flush. One failed export then opens the gate below for the rest of
# the flush, so a flush with the collector down or hanging costs at most one timeout.
EXPORT_TIMEOUT_S = 0.5
EXPORT_FAILURE_COOLDOWN_S = 5.0

# FR-073: BatchSpanProcessor sized for Lambda.
SCHEDULE_DELAY_MILLIS = 1000
MAX_EXPORT_BATCH_SIZE = 64
# The queue must hold at least twice the spans one invocation can produce. The sum, for the
# worst stream the function allows (timeout 900 s, fastest poll 1 s):
#   per poll cycle: 1 poll span + 1 DynamoDB span + 1 CloudWatch span      = 3
#   per event dispatched: 1 dispatch span, at most MAX_EVENTS_PER_POLL = 50 per cycle
#   whole stream, idle: 900 cycles * 3                                       = 2,700
#   plus events: bounded by the same queue; each cycle is flushed proactively, so between two
#   flushes the queue holds at most one cycle (3 + 50 = 53 spans).
#   2 * 2,700 = 5,400  ->  6,144 (next multiple of the batch size's power of two; ~6 MB at 1 KB/span)
MAX_STREAM_SECONDS = 900
MIN_POLL_INTERVAL_S = 1
SPANS_PER_POLL_CYCLE = 3
MAX_EVENTS_PER_POLL = 50
MAX_QUEUE_SIZE = 6144
assert MAX_QUEUE_SIZE >= 2 * (MAX_STREAM_SECONDS // MIN_POLL_INTERVAL_S) * SPANS_PER_POLL_CYCLE

_provider: TracerProvider | None = None
_exporter: DeadlineBoundedExporter | None = None
_provider_lock = threading.Lock()


class ServiceNameMismatchError(RuntimeError):
    """OTEL_SERVICE_NAME must equal POWERTOOLS_SERVICE_NAME so the service map shows one node (FR-071)."""


class DeadlineBoundedExporter(SpanExporter):
    """Wraps the OTLP exporter so a flush with the collector down costs one timeout, not one per batch.

    After a failed export, later batches are refused at once until the cooldown ends or the next
    invocation begins; they are counted in `dropped_spans` (export failures are silent by OTel
    design, FR-066: the canary measures loss in aggregate).
    """

    def __init__(self, inner: SpanExporter, cooldown_s: float = EXPORT_FAILURE_COOLDOWN_S) -> None:
        self._inner = inner
        self._cooldown_s = cooldown_s
        self._refuse_until = 0.0
        self._deadline = float("inf")
        self.exported_spans = 0
        self.dropped_spans = 0

    def set_deadline(self, monotonic_deadline: float) -> None:
        """No export may start after this instant (the invocation's deadline)."""
        self._deadline = monotonic_deadline

    def reset(self) -> None:
        """A new invocation: try the collector again."""
        self._refuse_until = 0.0
        self._deadline = float("inf")

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        now = time.monotonic()
        if now < self._refuse_until or now >= self._deadline:
            self.dropped_spans += len(spans)
            return SpanExportResult.FAILURE
        result = self._inner.export(spans)
        if result is SpanExportResult.SUCCESS:
            self.exported_spans += len(spans)
        else:
            self.dropped_spans += len(spans)
            self._refuse_until = time.monotonic() + self._cooldown_s
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class OtlpExporterAtFirstExport(SpanExporter):
    """The OTLP/HTTP span exporter, imported and built at the first export instead of at init.

    Its module imports `requests` and protobuf, the largest share of the SSE function's cold start
    (benchmarks/RESULTS.md, section 2). The first export is the stream's first flush, after its
    first frame is out, so the time to the first byte no longer includes it; the configuration is
    still decided once, in `build_provider`. No fallback: an import or construction error raises
    from the first export (FR-018).

    Example:
        >>> exporter = OtlpExporterAtFirstExport("http://localhost:4318/v1/traces", 0.5)
        >>> exporter.built                      # nothing imported yet
        False
    """

    def __init__(self, endpoint: str, timeout_s: float) -> None:
        self._endpoint = endpoint
        self._timeout_s = timeout_s
        self._exporter: SpanExporter | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._exporter is not None

    def _built_exporter(self) -> SpanExporter:
        with self._lock:
            if self._exporter is None:
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                self._exporter = OTLPSpanExporter(endpoint=self._endpoint, timeout=self._timeout_s)
            return self._exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return self._built_exporter().export(spans)

    def shutdown(self) -> None:
        if self._exporter is not None:  # never built: nothing to close
            self._exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True  # the OTLP exporter holds no buffer of its own


def _service_name() -> str:
    service = os.environ["OTEL_SERVICE_NAME"]
    powertools_service = os.environ.get("POWERTOOLS_SERVICE_NAME")
    if powertools_service is not None and powertools_service != service:
        raise ServiceNameMismatchError(
            f"OTEL_SERVICE_NAME={service!r} differs from POWERTOOLS_SERVICE_NAME={powertools_service!r}"
        )
    return service


def build_provider(endpoint: str | None = None) -> tuple[TracerProvider, DeadlineBoundedExporter]:
    """A configured provider and its exporter. Production code calls `tracer_provider()` instead,
    which builds exactly one; tests and benchmarks use this to measure a provider they own."""
    # FR-072: cloud.* / faas.* from the Lambda detector, merged with the service name (FR-047).
    resource = AwsLambdaResourceDetector().detect().merge(Resource.create({SERVICE_NAME: _service_name()}))
    exporter = DeadlineBoundedExporter(
        OtlpExporterAtFirstExport(
            endpoint or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", COLLECTOR_TRACES_ENDPOINT),
            EXPORT_TIMEOUT_S,
        )
    )
    provider = TracerProvider(
        resource=resource,
        sampler=ParentBased(ALWAYS_ON),  # FR-056: the runtime's Sampled=0 means no spans
        id_generator=AwsXRayIdGenerator(),  # FR-053
        shutdown_on_exit=False,  # FR-077: no atexit flush racing the freeze
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter,
            max_queue_size=MAX_QUEUE_SIZE,
            schedule_delay_millis=SCHEDULE_DELAY_MILLIS,
            max_export_batch_size=MAX_EXPORT_BATCH_SIZE,
        )
    )
    return provider, exporter


def tracer_provider() -> TracerProvider:
    """The execution environment's one provider (FR-065), built on first call, then reused.

    Also installs AwsXRayLambdaPropagator as the global propagator (FR-052); OTEL_PROPAGATORS is
    never consulted (FR-068): this code is the single source of truth.
    """
    global _provider, _exporter
    with _provider_lock:
        if _provider is None:
            _provider, _exporter = build_provider()
            propagate.set_global_textmap(AwsXRayLambdaPropagator())
        return _provider


def export_stats() -> tuple[int, int]:
    """(exported, dropped) span counts of this execution environment."""
    tracer_provider()
    assert _exporter is not None
    return _exporter.exported_spans, _exporter.dropped_spans


def stream_tracer(name: str = "sentiment-analyzer.sse") -> trace.Tracer:
    return tracer_provider().get_tracer(name)


def extract_invocation_parent(carrier: Mapping[str, str] | None = None) -> otel_context.Context:
    """This invocation's trace context, read now from `_X_AMZN_TRACE_ID` (FR-059).

    For a stream that starts after the handler returned: extract in the handler phase, while the
    runtime's `_X_AMZN_TRACE_ID` is this invocation's, and hand the result to `invocation_context`.

    Example:
        >>> parent = extract_invocation_parent()                     # doctest: +SKIP
        >>> with invocation_context(parent=parent): ...              # doctest: +SKIP
    """
    tracer_provider()
    return propagate.extract(dict(carrier or {}))


@contextmanager
def invocation_context(
    carrier: Mapping[str, str] | None = None,
    deadline_monotonic: float | None = None,
    parent: otel_context.Context | None = None,
) -> Iterator[otel_context.Context]:
    """Extract this invocation's trace context and attach it as the parent of its spans (FR-059).

    Called inside each invocation, never at module level: the runtime sets `_X_AMZN_TRACE_ID`
    per invocation, and the Lambda propagator reads it when the carrier holds no header.
    `parent`, when given, is a context `extract_invocation_parent` took earlier in this invocation.
    """
    tracer_provider()
    assert _exporter is not None
    _exporter.reset()
    if deadline_monotonic is not None:
        _exporter.set_deadline(deadline_monotonic)
    if parent is None:
        parent = propagate.extract(dict(carrier or {}))
    token = otel_context.attach(parent)
    try:
        yield parent
    finally:
        otel_context.detach(token)


def flush() -> bool:
    """Export what the queue holds, bounded by the exporter timeout and the invocation deadline (FR-055)."""
    return tracer_provider().force_flush()


def set_annotations(span: Span, annotations: Mapping[str, AnnotationValue]) -> None:
    """Attributes the collector indexes as X-Ray annotations: keys validated like X-Ray's."""
    for key, value in validate_annotations(annotations).items():
        span.set_attribute(key, bound_attribute(value) if isinstance(value, str) else value)


def record_bounded_exception(span: Span, error: BaseException) -> None:
    """record_exception with the message and stack bounded (FR-058), status ERROR (FR-067)."""
    stack = "".join(traceback.format_exception(type(error), error, error.__traceback__, limit=MAX_STACK_FRAMES))
    span.record_exception(
        error,
        attributes={
            "exception.message": bound_attribute(str(error)),
            "exception.stacktrace": bound_attribute(stack),
        },
    )
    span.set_status(Status(StatusCode.ERROR, bound_attribute(f"{type(error).__name__}: {error}")))


@contextmanager
def bounded_span(
    name: str, kind: SpanKind = SpanKind.INTERNAL, attributes: Mapping[str, AttributeValue] | None = None
) -> Iterator[Span]:
    """A current span whose failures are recorded bounded (FR-058) and re-raised.

    Use it around each step of a generator, never as a decorator on one (FR-031).

    Example:
        >>> with bounded_span("sse.poll") as span:                  # doctest: +SKIP
        ...     set_annotations(span, {"item_count": 3})
    """
    with stream_tracer().start_as_current_span(
        name, kind=kind, attributes=attributes, record_exception=False, set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except Exception as error:  # recorded bounded, then re-raised: the caller decides
            record_bounded_exception(span, error)
            raise


@contextmanager
def aws_call_span(service: str, operation: str, table_names: Sequence[str] = ()) -> Iterator[Span]:
    """A CLIENT span around one AWS API call, with the conventions the awsxray exporter maps to a
    typed node (FR-067): `rpc.*` always, plus `db.system="dynamodb"` and the table names for
    DynamoDB. A failing call is recorded bounded (FR-058), with the HTTP status of a ClientError,
    and re-raised.

    Example:
        >>> with aws_call_span("DynamoDB", "Query", [table_name]) as span:          # doctest: +SKIP
        ...     response = table.query(...)
        >>> with aws_call_span("CloudWatch", "PutMetricData"):                       # doctest: +SKIP
        ...     cloudwatch.put_metric_data(...)
    """
    attributes: dict[str, AttributeValue] = {
        "rpc.system": "aws-api", "rpc.service": service, "rpc.method": operation,
    }
    if service == "DynamoDB":
        attributes.update({"db.system": "dynamodb", "db.operation": operation,
                           "aws.dynamodb.table_names": list(table_names)})
    with bounded_span(f"{service}.{operation}", SpanKind.CLIENT, attributes) as span:
        try:
            yield span
        except ClientError as error:  # its HTTP status lets X-Ray tell error (4xx), throttle (429) and fault
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if isinstance(status, int):
                span.set_attribute("http.response.status_code", status)
            raise
