"""The canary's checks of X-Ray and CloudWatch (FR-019, FR-049, FR-078), each reporting a CheckResult.

Every check survives any AWS error (FR-018's one exemption): the error is classified
(`errors.call_aws`), marked on the check's own subsegment, and returned as the check's failure,
so the run's result names the check that failed and why.

- `TraceProbe` (the "X-Ray API reachable" check): N synthetic traces of two documents each (a
  segment and a subsegment sent on its own, as the SDK does), annotated `canary_probe=true` and
  `canary_run_id`, submitted with `PutTraceSegments` and read back with `BatchGetTraces` (5 ids a
  call). A trace is complete when every document submitted came back, partial when only some did
  (X-Ray's `IsPartial`, which `BatchGetTraces` does not report), missing when none did. It proves
  only that X-Ray's API answers; `probes` finds traces lost on their way from our functions.
- `CloudWatchRoundTrip`: a `CanaryTestMetric` datum (one-second resolution, a random value) read
  back from exactly its second.
- `app_metrics_check`: `NewItemsIngested` (the ingestion heartbeat, every run) is still arriving.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> probe = TraceProbe(settings, run_id, policy, readback)   # doctest: +SKIP
    >>> probe.submit(); probe.verify().status                    # doctest: +SKIP
    <Status.HEALTHY: 'healthy'>
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from math import inf
from typing import TYPE_CHECKING, Any

from lambdas.canary import clients
from lambdas.canary.errors import AwsCallError, AwsFailure, Readback, RetryPolicy, call_aws
from lambdas.canary.settings import CanarySettings
from lib.metrics import APP_NAMESPACE, CANARY_NAMESPACE, DIMENSION_NAME, CanaryMetric, Metric, metric_datum
from lib.tracing.annotations import validate_annotations
from lib.tracing.header import new_entity_id, new_trace_id
from lib.tracing.powertools import annotate, lambda_tracer, mark_handled_failure

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import GetMetricStatisticsOutputTypeDef, MetricDatumTypeDef
    from mypy_boto3_xray.type_defs import BatchGetTracesResultTypeDef

tracer = lambda_tracer()

BATCH_GET_LIMIT = 5  # BatchGetTraces takes at most 5 trace ids a call
APP_METRICS_WINDOW = dt.timedelta(minutes=15)  # three ingestion runs: one late run is not an outage


class Status(StrEnum):
    HEALTHY = "healthy"
    DEGRADED = "degraded"
    FAILED = "failed"

    @property
    def value_metric(self) -> float:
        """`CanaryHealth`: 1 healthy, 0.5 degraded, 0 failed."""
        return {Status.HEALTHY: 1.0, Status.DEGRADED: 0.5, Status.FAILED: 0.0}[self]


def worst(statuses: Iterable[Status]) -> Status:
    order = [Status.HEALTHY, Status.DEGRADED, Status.FAILED]
    return max(statuses, key=order.index, default=Status.HEALTHY)


class CheckName(StrEnum):
    XRAY_API = "xray_api_reachable"  # synthetic documents through PutTraceSegments: the API answers, no more
    BATCH_PROBE = "batch_probe"
    STREAM_PROBE = "stream_probe"
    TRACE_LOSS = "trace_loss"
    CLOUDWATCH_ROUNDTRIP = "cloudwatch_roundtrip"
    APP_METRICS = "app_metrics"
    CANARY_STATE = "canary_state"
    CANARY_METRICS = "canary_metrics"
    ALERT_DELIVERY = "alert_delivery"


@dataclass(frozen=True)
class CheckResult:
    name: CheckName
    status: Status
    detail: str
    failure: AwsFailure | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "detail": self.detail,
                "failure": self.failure.as_dict() if self.failure else None}


class CheckFailedError(RuntimeError):
    """A check's failure that is not an AWS error (data missing): recorded on its subsegment, never raised."""


def record(result: CheckResult, error: Exception | None = None) -> CheckResult:
    """Put the result on the check's subsegment: annotations, and error/fault when it failed."""
    annotate(tracer, canary_check=result.name.value, check_status=result.status.value)
    if result.status is Status.FAILED:
        mark_handled_failure(tracer, error or CheckFailedError(result.detail))
    return result


@dataclass
class TraceCounts:
    """What one run's probe found. `measured` is False when retrieval itself failed (nothing known)."""

    submitted: int
    complete: int = 0
    partial: int = 0
    missing: int = 0
    refused: int = 0
    measured: bool = False

    @property
    def completeness(self) -> float:
        return self.complete / self.submitted if self.submitted else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"submitted": self.submitted, "complete": self.complete, "partial": self.partial,
                "missing": self.missing, "refused": self.refused, "measured": self.measured,
                "completeness": round(self.completeness, 4)}


def entity_ids(document: dict[str, Any]) -> Iterator[str]:
    """The ids of a document and of every subsegment embedded in it (X-Ray merges them on read)."""
    yield str(document.get("id"))
    for child in document.get("subsegments", []) or []:
        yield from entity_ids(child)


class TraceProbe:
    """FR-019: submit a batch of test traces, then retrieve them with backoff (FR-078).

    This proves only that X-Ray's API stores and returns documents ("X-Ray API reachable"); loss
    in the daemon, the collector or a function's role is what `probes` finds.
    """

    def __init__(self, settings: CanarySettings, run_id: str, policy: RetryPolicy, readback: Readback,
                 now: Callable[[], float] = time.time):
        self._settings = settings
        self._policy = policy
        self._readback = readback
        self._now = now
        self.run_id = run_id
        self.expected: dict[str, set[str]] = {}  # trace id → ids of its documents
        self.counts = TraceCounts(settings.trace_batch_size)
        self._submit_failure: AwsCallError | None = None
        self._refused: set[str] = set()

    def documents(self) -> list[str]:
        """Two documents per trace, each annotated for the canary group (`annotation.canary_probe = true`)."""
        annotations = validate_annotations({"canary_probe": True, "canary_run_id": self.run_id})
        documents = []
        for _ in range(self._settings.trace_batch_size):
            trace_id, segment_id, subsegment_id = new_trace_id(), new_entity_id(), new_entity_id()
            end = self._now()
            segment = {"name": f"{self._settings.function_name}-probe", "id": segment_id, "trace_id": trace_id,
                       "start_time": end - 0.002, "end_time": end, "annotations": annotations}
            subsegment = {"name": "canary_probe_step", "id": subsegment_id, "trace_id": trace_id,
                          "parent_id": segment_id, "type": "subsegment", "start_time": end - 0.001,
                          "end_time": end, "annotations": annotations}
            self.expected[trace_id] = {segment_id, subsegment_id}
            documents += [json.dumps(segment), json.dumps(subsegment)]
        return documents

    @tracer.capture_method(capture_response=False)
    def submit(self) -> None:
        documents = self.documents()
        annotate(tracer, canary_check=CheckName.XRAY_API.value, canary_run_id=self.run_id,
                 traces_submitted=len(self.expected))
        try:
            response = call_aws("xray:PutTraceSegments",
                                lambda: clients.xray().put_trace_segments(TraceSegmentDocuments=documents),
                                self._policy)
        except AwsCallError as error:
            self._submit_failure = error
            mark_handled_failure(tracer, error.error)
            return
        refused_ids = {item.get("Id") for item in response.get("UnprocessedTraceSegments", [])}
        # An unprocessed document without an id (unparseable) cannot be told apart: assume the worst.
        self._refused = {trace_id for trace_id, ids in self.expected.items()
                         if ids & refused_ids or None in refused_ids}

    @tracer.capture_method(capture_response=False)
    def verify(self) -> CheckResult:
        counts = self.counts
        if self._submit_failure is not None:
            counts.missing, counts.measured = counts.submitted, True  # refused at the door: lost
            failure = self._submit_failure.failure
            return record(CheckResult(CheckName.XRAY_API, Status.FAILED,
                                      f"PutTraceSegments failed: {failure.code}", failure), self._submit_failure.error)
        counts.refused = len(self._refused)
        pending = [trace_id for trace_id in self.expected if trace_id not in self._refused]
        seen: dict[str, set[str]] = {}
        try:
            for _ in self._readback.attempts():
                self._fetch(pending, seen)
                pending = [trace_id for trace_id in pending if not self._complete(trace_id, seen)]
                if not pending:
                    break
        except AwsCallError as error:
            return record(CheckResult(CheckName.XRAY_API, Status.FAILED,
                                      f"BatchGetTraces failed: {error.failure.code}", error.failure), error.error)
        counts.measured = True
        counts.complete = sum(1 for trace_id in self.expected if self._complete(trace_id, seen))
        counts.partial = sum(1 for trace_id in self.expected
                             if seen.get(trace_id) and not self._complete(trace_id, seen))
        counts.missing = counts.submitted - counts.complete - counts.partial
        annotate(tracer, traces_complete=counts.complete, traces_partial=counts.partial,
                 traces_missing=counts.missing, readback_attempts=self._readback.looks)
        detail = (f"{counts.complete}/{counts.submitted} traces complete, {counts.partial} partial, "
                  f"{counts.missing} missing ({counts.refused} refused by PutTraceSegments) "
                  f"after {self._readback.looks} read(s)")
        if counts.complete == counts.submitted:
            status = Status.HEALTHY
        elif counts.complete == 0:
            status = Status.FAILED
        else:
            status = Status.DEGRADED
        return record(CheckResult(CheckName.XRAY_API, status, detail))

    def _complete(self, trace_id: str, seen: dict[str, set[str]]) -> bool:
        return self.expected[trace_id] <= seen.get(trace_id, set())

    def _fetch(self, trace_ids: list[str], seen: dict[str, set[str]]) -> None:
        for start in range(0, len(trace_ids), BATCH_GET_LIMIT):
            chunk = trace_ids[start:start + BATCH_GET_LIMIT]
            token: str | None = None
            while True:
                response = call_aws("xray:BatchGetTraces", partial(_batch_get_traces, chunk, token), self._policy)
                for trace in response.get("Traces", []):
                    found = seen.setdefault(str(trace.get("Id")), set())
                    for segment in trace.get("Segments", []):
                        found.update(entity_ids(json.loads(segment["Document"])))
                token = response.get("NextToken")
                if not token:
                    break


def _batch_get_traces(trace_ids: list[str], token: str | None) -> BatchGetTracesResultTypeDef:
    if token:
        return clients.xray().batch_get_traces(TraceIds=trace_ids, NextToken=token)
    return clients.xray().batch_get_traces(TraceIds=trace_ids)


class CloudWatchRoundTrip:
    """FR-049: put a `CanaryTestMetric` datum whose value only this run uses, then read it back."""

    def __init__(self, function_name: str, policy: RetryPolicy, readback: Readback,
                 now: Callable[[], dt.datetime] | None = None):
        self._function_name = function_name
        self._policy = policy
        self._readback = readback
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self.value = float(secrets.randbelow(10**9) + 1)
        self.timestamp = self._now().replace(microsecond=0)
        self._put_failure: AwsCallError | None = None

    @tracer.capture_method(capture_response=False)
    def submit(self) -> None:
        annotate(tracer, canary_check=CheckName.CLOUDWATCH_ROUNDTRIP.value)
        # One-second resolution, so the read-back can ask for exactly this second.
        datum = metric_datum(CanaryMetric.CANARY_TEST_METRIC, self.value, "None")
        datum["Timestamp"] = self.timestamp
        datum["StorageResolution"] = 1
        try:
            call_aws("cloudwatch:PutMetricData",
                     lambda: clients.cloudwatch().put_metric_data(Namespace=CANARY_NAMESPACE, MetricData=[datum]),
                     self._policy)
        except AwsCallError as error:
            self._put_failure = error
            mark_handled_failure(tracer, error.error)

    @tracer.capture_method(capture_response=False)
    def verify(self) -> CheckResult:
        if self._put_failure is not None:
            failure = self._put_failure.failure
            return record(CheckResult(CheckName.CLOUDWATCH_ROUNDTRIP, Status.FAILED,
                                      f"PutMetricData failed: {failure.code}", failure), self._put_failure.error)
        def read() -> GetMetricStatisticsOutputTypeDef:
            return clients.cloudwatch().get_metric_statistics(
                Namespace=CANARY_NAMESPACE, MetricName=CanaryMetric.CANARY_TEST_METRIC.value,
                Dimensions=[{"Name": DIMENSION_NAME, "Value": self._function_name}],
                StartTime=self.timestamp, EndTime=self.timestamp + dt.timedelta(seconds=1), Period=1,
                Statistics=["Minimum", "Maximum"])

        try:
            for _ in self._readback.attempts():
                points = call_aws("cloudwatch:GetMetricStatistics", read, self._policy)["Datapoints"]
                # Ours lies within its second's [Minimum, Maximum] once stored. Another run's datum in the same
                # second (tests run many a second) could satisfy this without ours: then CloudWatch stores data.
                if any(point.get("Minimum", inf) <= self.value <= point.get("Maximum", -inf) for point in points):
                    annotate(tracer, readback_attempts=self._readback.looks)
                    return record(CheckResult(CheckName.CLOUDWATCH_ROUNDTRIP, Status.HEALTHY,
                                              f"test datum read back after {self._readback.looks} read(s)"))
        except AwsCallError as error:
            return record(CheckResult(CheckName.CLOUDWATCH_ROUNDTRIP, Status.FAILED,
                                      f"GetMetricStatistics failed: {error.failure.code}", error.failure), error.error)
        annotate(tracer, readback_attempts=self._readback.looks)
        return record(CheckResult(CheckName.CLOUDWATCH_ROUNDTRIP, Status.FAILED,
                                  f"test datum not readable after {self._readback.looks} read(s)"))


@tracer.capture_method(capture_response=False)
def app_metrics_check(ingestion_function_name: str, policy: RetryPolicy, now: dt.datetime | None = None
                      ) -> CheckResult:
    """Application metrics still arrive: the ingestion heartbeat `NewItemsIngested` (0 included)."""
    end = (now or dt.datetime.now(dt.UTC)) + dt.timedelta(minutes=1)  # CloudWatch's end bound is exclusive

    def read() -> GetMetricStatisticsOutputTypeDef:
        return clients.cloudwatch().get_metric_statistics(
            Namespace=APP_NAMESPACE, MetricName=Metric.NEW_ITEMS_INGESTED.value,
            Dimensions=[{"Name": DIMENSION_NAME, "Value": ingestion_function_name}],
            StartTime=end - APP_METRICS_WINDOW - dt.timedelta(minutes=1), EndTime=end, Period=60,
            Statistics=["SampleCount"])

    annotate(tracer, canary_check=CheckName.APP_METRICS.value)
    try:
        points = call_aws("cloudwatch:GetMetricStatistics", read, policy)["Datapoints"]
    except AwsCallError as error:
        return record(CheckResult(CheckName.APP_METRICS, Status.FAILED,
                                  f"GetMetricStatistics failed: {error.failure.code}", error.failure), error.error)
    samples = int(sum(point.get("SampleCount", 0) for point in points))
    minutes = int(APP_METRICS_WINDOW.total_seconds() // 60)
    if samples == 0:
        return record(CheckResult(CheckName.APP_METRICS, Status.FAILED,
                                  f"no {Metric.NEW_ITEMS_INGESTED.value} from {ingestion_function_name} "
                                  f"in {minutes} min"))
    return record(CheckResult(CheckName.APP_METRICS, Status.HEALTHY,
                              f"{samples} {Metric.NEW_ITEMS_INGESTED.value} sample(s) in {minutes} min"))


@dataclass
class PublishedMetrics:
    """The canary's own data points of one run (namespace SentimentAnalyzer/Canary)."""

    health: Status
    completeness: float | None
    data_loss: bool
    probe_data: list[MetricDatumTypeDef] = field(default_factory=list)  # probes.probe_metric_data
    names: list[str] = field(default_factory=list)


@tracer.capture_method(capture_response=False)
def publish_canary_metrics(metrics: PublishedMetrics, policy: RetryPolicy) -> CheckResult:
    """`CanaryHealth`, `TraceCompleteness` (when measured) and `trace_data_loss` (when under threshold)."""
    data = [metric_datum(CanaryMetric.CANARY_HEALTH, metrics.health.value_metric, "None")]
    if metrics.completeness is not None:
        data.append(metric_datum(CanaryMetric.TRACE_COMPLETENESS, metrics.completeness, "None"))
    if metrics.data_loss:
        data.append(metric_datum(CanaryMetric.TRACE_DATA_LOSS, 1, "Count"))
    data += metrics.probe_data
    metrics.names = sorted({datum["MetricName"] for datum in data})
    annotate(tracer, canary_check=CheckName.CANARY_METRICS.value)
    try:
        call_aws("cloudwatch:PutMetricData",
                 lambda: clients.cloudwatch().put_metric_data(Namespace=CANARY_NAMESPACE, MetricData=data), policy)
    except AwsCallError as error:
        return record(CheckResult(CheckName.CANARY_METRICS, Status.FAILED,
                                  f"PutMetricData failed: {error.failure.code}", error.failure), error.error)
    return record(CheckResult(CheckName.CANARY_METRICS, Status.HEALTHY, f"published {', '.join(metrics.names)}"))
