"""Powertools Tracer and Logger for the five batch Lambdas, the silent-failure helper, and the
subsegment for outbound HTTP calls the Tracer does not patch (`http_call_subsegment`).

Every X-Ray SDK touch of the project lives here (the SDK enters maintenance in 2026), so a move
to OTel later is this module's change alone.

Example:
    >>> tracer = lambda_tracer()                       # doctest: +SKIP
    >>> logger = lambda_logger()                       # doctest: +SKIP
    >>> @traced_handler(tracer)                        # doctest: +SKIP
    ... def lambda_handler(event, context): ...
    >>> with silent_failure(tracer, SilentFailurePath.AUDIT_WRITE, handles=AWS_ERRORS) as outcome:  # doctest: +SKIP
    ...     audit_table.put_item(Item=record)
    >>> outcome.failed                                 # doctest: +SKIP
    False
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from functools import cache, wraps
from typing import Any, Literal, ParamSpec, TypeVar

import aws_xray_sdk.core
from aws_lambda_powertools import Logger, Tracer
from aws_xray_sdk.core.emitters.udp_emitter import (
    DEFAULT_DAEMON_ADDRESS,
    PROTOCOL_DELIMITER,
    PROTOCOL_HEADER,
    UDPEmitter,
)
from aws_xray_sdk.core.lambda_launcher import LambdaContext
from aws_xray_sdk.core.models.throwable import Throwable
from botocore.exceptions import ClientError

from lib.metrics import Metric, put_metric
from lib.tracing.annotations import AnnotationValue, validate_annotations
from lib.tracing.bounds import MAX_STACK_FRAMES, serialize_documents, truncate_message
from lib.tracing.header import TraceHeader

# Client libraries whose DEBUG lines carry credentials and personal data: boto3 and botocore log
# request and response bodies (Secrets Manager values, alert rules' email addresses), python-http-client the
# SendGrid request's headers (the API key) and body (the recipient). Lambda's log level control can
# put the root logger at DEBUG; these must not reach CloudWatch even then (SC-011).
QUIETED_LOGGERS = ("boto3", "botocore", "python_http_client")

# FR-030: exactly one patching mechanism. The Tracer patches these and nothing else patches.
PATCHED_MODULES = ("botocore", "requests")


def modules_to_patch() -> tuple[str, ...]:
    """PATCHED_MODULES that this package carries: `requests` is in ingestion's only (the Lambda
    runtime has none), and patching a module that is not there fails the import of the handler."""
    return tuple(module for module in PATCHED_MODULES if importlib.util.find_spec(module) is not None)

Handler = TypeVar("Handler", bound=Callable[..., Any])
Params = ParamSpec("Params")
Result = TypeVar("Result")


class BoundedUDPEmitter(UDPEmitter):  # type: ignore[misc]
    """The SDK's UDP emitter, every document below 64 KB (FR-058): an entity too large for one is
    split into several (`serialize_documents`), never cut.

    Unlike the stock emitter it does not swallow send errors (FR-018).
    """

    def send_entity(self, entity: Any) -> None:
        # Serialised once (bounding needs the size; the stock emitter would serialise again).
        for document in serialize_documents(entity.to_dict()):
            self._send_data(f"{PROTOCOL_HEADER}{PROTOCOL_DELIMITER}{document}")


class HeaderCachingLambdaContext(LambdaContext):  # type: ignore[misc]
    """The SDK's Lambda context, re-reading `_X_AMZN_TRACE_ID` only when something changed.

    The SDK parses the header on every entity lookup (about six per subsegment: a third of what a
    traced AWS call costs the function). Its verdict depends only on the header and the thread's
    segment, so it is kept while both are the very same as at the last full refresh; a new
    invocation's header, `set_trace_entity` or `clear_trace_entities` all refresh as before.
    """

    def _refresh_context(self) -> None:
        local = self._local
        checked = (os.environ.get("_X_AMZN_TRACE_ID"), getattr(local, "segment", None))
        if checked[0] is not None and checked[1] is not None and getattr(local, "checked", None) == checked:
            return
        super()._refresh_context()
        local.checked = (checked[0], getattr(local, "segment", None))


def lambda_tracer(service: str | None = None, *, auto_patch: bool = True) -> Tracer:
    """The Lambda's one Tracer (FR-029). Build it at module level, after Lambda set the environment.

    `auto_patch=True` patches exactly `PATCHED_MODULES` that the package carries (FR-030); the SSE Lambda passes False
    (FR-060) because its streaming phase is traced with OTel.
    """
    tracer = Tracer(
        service=service,
        auto_patch=auto_patch,
        patch_modules=modules_to_patch() if auto_patch else None,
    )
    if not tracer.disabled:
        recorder = aws_xray_sdk.core.xray_recorder
        recorder.configure(
            # Lambda always sets the daemon address; the SDK's default applies when it is absent.
            emitter=BoundedUDPEmitter(os.environ.get("AWS_XRAY_DAEMON_ADDRESS", DEFAULT_DAEMON_ADDRESS)),
            max_trace_back=MAX_STACK_FRAMES,
        )
        if not isinstance(recorder.context, HeaderCachingLambdaContext):
            recorder.configure(context=HeaderCachingLambdaContext())
    return tracer


def traced_handler(tracer: Tracer) -> Callable[[Handler], Handler]:
    """`capture_lambda_handler` without response or full-exception metadata (FR-058): the cause
    carries the bounded exception; a response body never becomes metadata. Each invocation starts
    from its own function segment (see `_start_invocation_context`)."""
    decorator: Callable[[Handler], Handler] = tracer.capture_lambda_handler(
        capture_response=False, capture_error=False
    )
    if tracer.disabled:
        return decorator

    def wrap(handler: Handler) -> Handler:
        captured = decorator(handler)

        @wraps(handler)
        def invoke(event: Any, context: Any) -> Any:
            _start_invocation_context()
            return captured(event, context)

        return invoke  # type: ignore[return-value]

    return wrap


def _start_invocation_context() -> None:
    """Drop the thread's facade when it is not this invocation's function segment.

    The SDK keeps its facade while the trace Root stays the same (it compares only the Root). A warm
    function invoked twice in one trace, as each SNS fan-out message of one ingestion run does,
    would hang the second invocation's subsegments under the first one's function segment.
    """
    raw = os.environ.get("_X_AMZN_TRACE_ID")
    if not raw:
        return
    recorder = aws_xray_sdk.core.xray_recorder
    if recorder.current_segment().id != TraceHeader.parse(raw).parent:
        recorder.clear_trace_entities()


def in_caller_trace(tracer: Tracer, work: Callable[Params, Result]) -> Callable[Params, Result]:
    """`work`, bound to the calling thread's current X-Ray entity, to run in a worker thread.

    The SDK's context is thread-local (FR-025/037: it stays so): in a worker thread, subsegments
    would otherwise not hang under the caller's subsegment. Call this in the caller's thread; the
    worker adopts the entity for the call and drops it afterwards (pool threads are reused).

    Example:
        >>> with ThreadPoolExecutor() as pool:                                           # doctest: +SKIP
        ...     futures = [pool.submit(in_caller_trace(tracer, fetch), s) for s in sources]
    """
    if tracer.disabled:
        return work
    recorder = aws_xray_sdk.core.xray_recorder
    entity = recorder.get_trace_entity()

    @wraps(work)
    def bound(*args: Params.args, **kwargs: Params.kwargs) -> Result:
        recorder.set_trace_entity(entity)
        try:
            return work(*args, **kwargs)
        finally:
            recorder.clear_trace_entities()

    return bound


def lambda_logger(service: str | None = None) -> Logger:
    """Powertools Logger: JSON lines that carry `xray_trace_id` (FR-012); no other correlation id.

    Also keeps `QUIETED_LOGGERS` at INFO or above, whatever the root logger's level.
    """
    for name in QUIETED_LOGGERS:
        library = logging.getLogger(name)
        library.setLevel(max(library.level, logging.INFO))
    return Logger(service=service)


def annotate(tracer: Tracer, **annotations: AnnotationValue) -> None:
    """Put validated annotations on the current subsegment (keys checked, at most 50)."""
    if tracer.disabled:
        validate_annotations(annotations)
        return
    entity = aws_xray_sdk.core.xray_recorder.get_trace_entity()
    present = {key for key in entity.annotations if key not in annotations}
    for key, value in validate_annotations(annotations, already_present=len(present)).items():
        entity.put_annotation(key, value)


# Skipped input records listed on one subsegment at most; past that only their number (FR-058).
MAX_RECORDED_SKIPS = 20
MAX_SKIP_FIELD_CHARS = 200


def record_skipped(tracer: Tracer, count_annotation: str, skipped: Sequence[Mapping[str, str | int | None]]) -> None:
    """Record on the current subsegment the input records the caller skipped: how many, as the
    annotation `count_annotation` (filterable, e.g. `annotation.malformed_articles > 0`), and the
    first MAX_RECORDED_SKIPS as metadata `skipped.records`, each string cut at MAX_SKIP_FIELD_CHARS
    (`skipped.omitted`: how many more). Pass what locates a record and why it was skipped (index,
    reason), never the record itself: its content is third-party payload.

    Example:
        >>> skipped = [{"index": 3, "reason": "field 'url' is empty"}]
        >>> record_skipped(tracer, "malformed_articles", skipped)  # doctest: +SKIP
    """
    annotate(tracer, **{count_annotation: len(skipped)})
    if tracer.disabled or not skipped:
        return
    listed = [{key: truncate_message(value, MAX_SKIP_FIELD_CHARS) if isinstance(value, str) else value
               for key, value in entry.items()} for entry in skipped[:MAX_RECORDED_SKIPS]]
    entity = aws_xray_sdk.core.xray_recorder.get_trace_entity()
    entity.put_metadata("records", listed, "skipped")
    entity.put_metadata("omitted", max(0, len(skipped) - MAX_RECORDED_SKIPS), "skipped")


class SilentFailurePath(Enum):
    """The seven handled failure paths of FR-002, each with its FR-043 metric."""

    CIRCUIT_BREAKER_LOAD = ("circuit_breaker_load", Metric.CIRCUIT_BREAKER_PERSISTENCE_FAILURE)
    CIRCUIT_BREAKER_SAVE = ("circuit_breaker_save", Metric.CIRCUIT_BREAKER_PERSISTENCE_FAILURE)
    AUDIT_WRITE = ("audit_trail_write", Metric.AUDIT_EVENT_PERSISTENCE_FAILURE)
    SNS_PUBLISH = ("downstream_sns_publish", Metric.DOWNSTREAM_NOTIFICATION_FAILURE)
    TIMESERIES_FANOUT = ("timeseries_fanout_batch_write", Metric.TIMESERIES_FANOUT_PARTIAL_FAILURE)
    SELF_HEALING_FETCH = ("self_healing_item_fetch", Metric.SELF_HEALING_ITEM_FETCH_FAILURE)
    PARALLEL_FETCH = ("parallel_fetcher_aggregation", Metric.PARALLEL_FETCHER_ERRORS)

    def __init__(self, subsegment_name: str, metric: Metric) -> None:
        self.subsegment_name = subsegment_name
        self.metric = metric


@dataclass
class SilentFailureOutcome:
    """What the caller needs to decide what happens next."""

    error: Exception | None = None

    @property
    def failed(self) -> bool:
        return self.error is not None


FailureKind = Literal["error", "fault", "throttle"]
_THROTTLING_CODES = frozenset(
    {"Throttling", "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
     "TooManyRequestsException", "ThrottledException"}
)


def classify_failure(error: BaseException) -> FailureKind:
    """X-Ray's taxonomy: throttle (429), error (other 4xx), fault (5xx and everything unknown).

    An error raised `from` an AWS error (a bounded retry giving up, say) is classified by that cause.

    Example:
        >>> classify_failure(RuntimeError("gave up"))
        'fault'
    """
    cause: BaseException | None = error
    while cause is not None and not isinstance(cause, ClientError):
        cause = cause.__cause__
    if isinstance(cause, ClientError):
        code = cause.response.get("Error", {}).get("Code", "")
        status = int(cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500))
        if code in _THROTTLING_CODES or status == 429:
            return "throttle"
        if 400 <= status < 500:
            return "error"
    return "fault"


def mark_failure(subsegment: Any, error: Exception, kind: FailureKind | None = None) -> None:
    """Record a handled exception on a subsegment: flag by taxonomy, bounded cause (FR-005, FR-058).

    `kind` overrides the taxonomy `classify_failure` derives from the error (an HTTP status the
    caller knows, for instance)."""
    stack = traceback.extract_tb(error.__traceback__, limit=MAX_STACK_FRAMES)
    # Built here rather than with add_exception(): when the failing AWS call's own subsegment already
    # recorded this exception, the SDK would store only a reference to it; the failure path's
    # subsegment must carry type and message itself (FR-005). The emitter bounds the message.
    subsegment.cause = {"working_directory": os.getcwd(), "exceptions": [Throwable(error, stack)]}
    _flag_failure(subsegment, kind or classify_failure(error))
    subsegment.put_metadata("error_message", truncate_message(str(error)), "failure")


def _flag_failure(subsegment: Any, kind: FailureKind) -> None:
    if kind == "fault":
        subsegment.add_fault_flag()
    else:
        subsegment.add_error_flag()
        if kind == "throttle":
            subsegment.add_throttle_flag()
    subsegment.put_annotation("failure_kind", kind)


def mark_handled_failure(tracer: Tracer, error: Exception) -> None:
    """Mark the current subsegment failed with `error` (taxonomy flag, bounded cause), for a failure
    the caller handles and reports itself. Call it inside a `capture_method` subsegment.

    For the canary, the one component that survives AWS errors (FR-018's exemption) and must still
    show in its own trace which check failed.

    Example:
        >>> @tracer.capture_method(capture_response=False)             # doctest: +SKIP
        ... def verify():
        ...     try:
        ...         return read_back()
        ...     except ClientError as error:
        ...         mark_handled_failure(tracer, error)
        ...         return CheckResult.failed(error)
    """
    if tracer.disabled:
        return
    subsegment = aws_xray_sdk.core.xray_recorder.current_subsegment()
    if subsegment is None:
        raise RuntimeError("mark_handled_failure needs an open subsegment (call it inside capture_method)")
    mark_failure(subsegment, error)


def http_failure_kind(status: int | None) -> FailureKind:
    """X-Ray's taxonomy for an HTTP answer: 429 throttle, other 4xx error, 5xx or no answer fault.

    Example:
        >>> [http_failure_kind(s) for s in (429, 400, 503, None)]
        ['throttle', 'error', 'fault', 'fault']
    """
    if status == 429:
        return "throttle"
    if status is not None and 400 <= status < 500:
        return "error"
    return "fault"


@dataclass
class HttpCall:
    """What the caller learned from one outbound HTTP call: set `status` as soon as the answer is known."""

    status: int | None = None


@contextmanager
def http_call_subsegment(tracer: Tracer, name: str, *, method: str, url: str) -> Iterator[HttpCall]:
    """One outbound HTTP call the Tracer does not patch (urllib / python-http-client, e.g. SendGrid:
    FR-028) as its own `remote` subsegment: method, URL, response status, `duration_ms`, and when
    it fails the flag of its status (`http_failure_kind`) with a bounded cause (FR-005, FR-058).

    Pass the URL without query string or credentials: it is stored as given. Headers and bodies
    are never recorded (API keys, recipient addresses: SC-011). Set `call.status` before raising
    for a non-2xx answer; the exception propagates unchanged (FR-018).

    Example:
        >>> url = f"{host}/v3/mail/send"                                                   # doctest: +SKIP
        >>> with http_call_subsegment(tracer, "SendGrid", method="POST", url=url) as call:  # doctest: +SKIP
        ...     call.status = client.mail.send.post(request_body=mail).status_code
    """
    call = HttpCall()
    failure: Exception | None = None
    started = time.monotonic()
    with tracer.provider.in_subsegment(name=name) as entity:
        subsegment: Any = entity  # the SDK's Subsegment (Powertools types it as its BaseSegment)
        subsegment.namespace = "remote"
        subsegment.put_http_meta("method", method)
        subsegment.put_http_meta("url", truncate_message(url))
        try:
            yield call
        except Exception as error:  # recorded below with the status' taxonomy, then re-raised unchanged
            failure = error
        subsegment.put_annotation("duration_ms", round((time.monotonic() - started) * 1000, 1))
        if call.status is not None:
            subsegment.put_http_meta("status", call.status)
        if failure is not None:
            mark_failure(subsegment, failure, http_failure_kind(call.status))
        elif call.status is not None and call.status >= 400:
            _flag_failure(subsegment, http_failure_kind(call.status))
    if failure is not None:
        # Raised outside the subsegment: inside, the SDK would add its own fault flag and cause.
        raise failure


@contextmanager
def silent_failure(
    tracer: Tracer, path: SilentFailurePath, *, handles: tuple[type[Exception], ...]
) -> Iterator[SilentFailureOutcome]:
    """Run one silent-failure-path operation in its own subsegment (FR-002).

    `handles` names the errors of the operation it guards (AWS client errors, a source's errors):
    such a failure is handled (the Lambda goes on) but never hidden: the subsegment is marked
    error/fault with a bounded cause (FR-005), and the path's metric is emitted whatever the
    sampling decision (FR-043). The caller reads `outcome` to decide what happens next. Anything
    else, a tracer error (an invalid annotation) included, propagates and faults the invocation
    (FR-018): a bug is not a business path failing.

    Example:
        >>> with silent_failure(tracer, SilentFailurePath.AUDIT_WRITE,             # doctest: +SKIP
        ...                     handles=(ClientError, BotoCoreError)) as outcome:
        ...     audit_table.put_item(Item=record)
    """
    if not handles or not all(isinstance(kind, type) and issubclass(kind, Exception) for kind in handles):
        raise TypeError(f"silent_failure needs the Exception types its operation raises, not {handles!r}")
    outcome = SilentFailureOutcome()
    with tracer.provider.in_subsegment(name=path.subsegment_name) as subsegment:
        subsegment.put_annotation("silent_failure_path", path.subsegment_name)
        try:
            yield outcome
        except handles as error:  # the designed handling of this path; recorded and counted below
            outcome.error = error
            mark_failure(subsegment, error)
    if outcome.error is not None:
        put_metric(path.metric, 1)
        _logger().warning(
            "silent failure path failed",
            extra={"path": path.subsegment_name, "error_type": type(outcome.error).__name__,
                   "error": truncate_message(str(outcome.error))},
        )


@cache
def _logger_for(service: str | None) -> Logger:
    return lambda_logger(service)


def _logger() -> Logger:
    """The function's Powertools logger (same service as the handler's), so lines carry xray_trace_id."""
    return _logger_for(os.environ.get("POWERTOOLS_SERVICE_NAME"))
