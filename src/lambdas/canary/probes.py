"""End-to-end probes (FR-066, FR-074, FR-075, SC-014): a real, sampled invocation of a production
function, then its whole trace tree read back from X-Ray (the expected shape: `tree_spec`).

- `batch`: `Invoke` of the dashboard function (its `GET /api/v2/tickers` route, read-only: the
  health route touches no table, so its tree could not prove the AWS call subsegments);
- `stream`: `InvokeWithResponseStream` of the SSE function with a Function URL-shaped event whose
  `x-canary-probe` header carries the token of the canary's secret; the function checks it and
  streams for about a second (one poll cycle), so its OTel spans go through the collector extension.

The trace is the canary's own: it sends `X-Amzn-Trace-Id: Root=<new>;Sampled=1` as an HTTP header
of the Invoke request (not in ClientContext, which only reaches the function's context object).
AWS services read the trace from that header ("all AWS services use the X-Amzn-Trace-Id header from
the HTTP request", https://docs.aws.amazon.com/step-functions/latest/apireference/API_StartExecution.html);
a function called "directly with an instrumented AWS SDK client" is traced by Lambda with the
caller's decision (https://docs.aws.amazon.com/xray/latest/devguide/xray-services-lambda.html), and
with tracing Active Lambda "will respect any tracing header it receives from an upstream service"
(https://docs.aws.amazon.com/lambda/latest/api/API_TracingConfig.html). The header is set at `before-send`, after
the X-Ray SDK put the canary's own trace header there (aws_xray_sdk ext/botocore `inject_header`);
SigV4 does not sign it (botocore auth.py, SIGNED_HEADERS_BLACKLIST), so changing it is safe.
The probe event's `x-canary-probe` header makes the function annotate its trace `synthetic=true`
(lib.tracing.synthetic).

Example (not run: invokes deployed functions and reads X-Ray):
    >>> probe = BatchProbe(settings, run_id, policy); probe.start()         # doctest: +SKIP
    >>> read_back([probe], policy, readback); probe.result().status          # doctest: +SKIP
    <Status.HEALTHY: 'healthy'>
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from lambdas.canary import clients
from lambdas.canary.checks import CheckName, CheckResult, Status, record
from lambdas.canary.errors import AwsCallError, AwsFailure, Readback, RetryPolicy, call_aws
from lambdas.canary.settings import CanarySettings
from lambdas.canary.tree_spec import BATCH_TREE, STREAM_TREE, Outcome, TreeSpec, Verdict, evaluate
from lib.metrics import CanaryMetric, metric_datum
from lib.tracing.header import TraceHeader, new_trace_id
from lib.tracing.powertools import annotate, lambda_tracer, mark_handled_failure
from lib.tracing.synthetic import PROBE_HEADER

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

tracer = lambda_tracer()

TRACE_HEADER = "X-Amzn-Trace-Id"
BATCH_ROUTE = "/api/v2/tickers"
STREAM_ROUTE = "/api/v2/stream"
MAX_STREAM_BYTES = 256 * 1024  # a probe stream is a few frames; more is a runaway stream, stop reading
PRELUDE_DELIMITER = b"\x00" * 8  # http-integration-response: JSON prelude, 8 NUL bytes, body
BATCH_GET_LIMIT = 5


@contextmanager
def trace_header_on(client: Any, operation: str, header: TraceHeader) -> Iterator[None]:
    """Every `operation` request of `client` inside the block carries `header` as X-Amzn-Trace-Id."""
    event = f"before-send.{client.meta.service_model.service_id.hyphenize()}.{operation}"
    unique = f"canary-probe-{uuid4().hex}"

    def set_header(request: Any, **_: Any) -> None:
        request.headers[TRACE_HEADER] = header.format()

    client.meta.events.register(event, set_header, unique_id=unique)
    try:
        yield
    finally:
        client.meta.events.unregister(event, unique_id=unique)


def api_gateway_event(run_id: str, path: str = BATCH_ROUTE) -> dict[str, Any]:
    """A REST API proxy event (payload 1.0) for `GET path`, marked as the canary's probe."""
    headers = {"accept": "application/json", "user-agent": "sentiment-analyzer-canary", PROBE_HEADER: run_id}
    return {
        "resource": path, "path": path, "httpMethod": "GET", "headers": headers,
        "multiValueHeaders": {name: [value] for name, value in headers.items()},
        "queryStringParameters": None, "multiValueQueryStringParameters": None, "pathParameters": None,
        "stageVariables": None, "body": None, "isBase64Encoded": False,
        "requestContext": {"requestId": run_id, "stage": "canary", "resourcePath": path, "httpMethod": "GET",
                           "path": path, "protocol": "HTTP/1.1",
                           "identity": {"sourceIp": "127.0.0.1", "userAgent": "sentiment-analyzer-canary"}},
    }


def function_url_event(run_id: str, token: str, path: str = STREAM_ROUTE) -> dict[str, Any]:
    """A Function URL event (payload 2.0) for `GET path` carrying the probe token."""
    headers = {"accept": "text/event-stream", "user-agent": "sentiment-analyzer-canary", PROBE_HEADER: token}
    return {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
        "isBase64Encoded": False,
        "requestContext": {"requestId": run_id, "routeKey": "$default", "stage": "$default",
                           "http": {"method": "GET", "path": path, "protocol": "HTTP/1.1",
                                    "sourceIp": "127.0.0.1", "userAgent": "sentiment-analyzer-canary"}},
    }


class ProbeFailedError(RuntimeError):
    """The probe's invocation did not answer as a healthy function does (recorded, never raised)."""


class EndToEndProbe:
    """One probe: `start()` invokes, `observe(documents)` judges what X-Ray holds, `result()` reports."""

    spec: TreeSpec
    check: CheckName

    def __init__(self, settings: CanarySettings, run_id: str, policy: RetryPolicy):
        self.settings = settings
        self.run_id = run_id
        self.policy = policy
        self.header = TraceHeader(root=new_trace_id(), sampled=True)  # Root=...;Sampled=1, no parent
        self.invoke_failure: tuple[str, AwsFailure | None] | None = None
        self.readback_failure: AwsFailure | None = None
        self.verdict: Verdict | None = None

    @property
    def trace_id(self) -> str:
        return self.header.root

    @tracer.capture_method(capture_response=False)
    def start(self) -> None:
        annotate(tracer, canary_check=self.check.value, probe_trace_id=self.trace_id)
        try:
            problem = self.invoke()
        except AwsCallError as error:
            self.invoke_failure = (f"{error.failure.operation} failed: {error.failure.code}", error.failure)
            mark_handled_failure(tracer, error.error)
            return
        if problem is not None:
            self.invoke_failure = (problem, None)
            mark_handled_failure(tracer, ProbeFailedError(problem))

    def invoke(self) -> str | None:
        """Invoke the function; what went wrong with its answer, or None."""
        raise NotImplementedError

    @property
    def waiting(self) -> bool:
        """Still worth reading back: invoked, and its tree not complete yet."""
        return self.invoke_failure is None and (self.verdict is None or self.verdict.outcome is not Outcome.COMPLETE)

    def observe(self, documents: list[dict[str, Any]]) -> None:
        self.verdict = evaluate(self.spec, documents)

    def as_dict(self) -> dict[str, Any]:
        """What the run's result and the alert say of this probe: its trace, outcome and missing parts."""
        return {"trace_id": self.trace_id, "invoked": self.invoke_failure is None,
                "outcome": None if self.verdict is None else self.verdict.outcome.value,
                "missing": [] if self.verdict is None else list(self.verdict.missing)}

    @tracer.capture_method(capture_response=False)
    def result(self, looks: int) -> CheckResult:
        if self.invoke_failure is not None:
            detail, failure = self.invoke_failure
            return record(CheckResult(self.check, Status.FAILED, f"{self.spec.path} probe not run: {detail}",
                                      failure))
        if self.readback_failure is not None and self.verdict is None:
            failure = self.readback_failure
            return record(CheckResult(self.check, Status.FAILED,
                                      f"{self.spec.path} probe not read back: BatchGetTraces failed: {failure.code}",
                                      failure))
        verdict = self.verdict or evaluate(self.spec, [])
        annotate(tracer, canary_check=self.check.value, probe_outcome=verdict.outcome.value)
        if verdict.outcome is Outcome.COMPLETE:
            return record(CheckResult(self.check, Status.HEALTHY,
                                      f"{self.spec.path} probe trace {self.trace_id} complete "
                                      f"({verdict.documents} documents) after {looks} read(s)"))
        # A tree still partial after every read-back is lost data: it pages like a lost one (FR-020),
        # the ProbeTreeLost metric tells the two apart.
        return record(CheckResult(self.check, Status.FAILED,
                                  f"{self.spec.path} probe trace {self.trace_id} {verdict.outcome.value} after "
                                  f"{looks} read(s): {'; '.join(verdict.missing)}"))


class BatchProbe(EndToEndProbe):
    spec = BATCH_TREE
    check = CheckName.BATCH_PROBE

    def invoke(self) -> str | None:
        client = clients.lambda_()
        payload = json.dumps(api_gateway_event(self.run_id))

        def call() -> Any:
            with trace_header_on(client, "Invoke", self.header):
                return client.invoke(FunctionName=self.settings.dashboard_function, Payload=payload)

        response = call_aws("lambda:InvokeFunction", call, self.policy)
        body = response["Payload"].read(MAX_STREAM_BYTES)
        if response.get("FunctionError"):
            return f"the dashboard function failed ({response['FunctionError']}): {body[:200]!r}"
        status = json.loads(body).get("statusCode") if body.startswith(b"{") else None
        return None if status == 200 else f"the dashboard answered {status!r} to GET {BATCH_ROUTE}"


class StreamProbe(EndToEndProbe):
    spec = STREAM_TREE
    check = CheckName.STREAM_PROBE

    def invoke(self) -> str | None:
        secret = call_aws("secretsmanager:GetSecretValue", lambda: clients.secretsmanager().get_secret_value(
            SecretId=self.settings.probe_secret), self.policy)
        token = json.loads(secret["SecretString"]).get("token")
        if not isinstance(token, str) or not token:
            return "the probe secret has no token"
        client = clients.lambda_()
        payload = json.dumps(function_url_event(self.run_id, token))

        def call() -> Any:
            with trace_header_on(client, "InvokeWithResponseStream", self.header):
                return client.invoke_with_response_stream(FunctionName=self.settings.sse_function, Payload=payload)

        response = call_aws("lambda:InvokeWithResponseStream", call, self.policy)
        raw, error = _read_stream(response["EventStream"])
        if error:
            return f"the SSE function failed: {error}"
        head, found, body = raw.partition(PRELUDE_DELIMITER)
        status = json.loads(head).get("statusCode") if found and head.startswith(b"{") else None
        if status != 200:
            return f"the SSE function answered {status!r} to the probe stream"
        # A probe stream ends itself at its short deadline with the final `reconnect` event (FR-090).
        if b'event: reconnect\ndata: {"reason":"deadline"' not in body:
            return "the probe stream ended without its final reconnect event (reason deadline)"
        return None


def _read_stream(events: Any) -> tuple[bytes, str | None]:
    """The payload of an InvokeWithResponseStream event stream, and the InvokeComplete error, if any."""
    chunks: list[bytes] = []
    size = 0
    error: str | None = None
    for event in events:
        if "PayloadChunk" in event:
            chunk = event["PayloadChunk"].get("Payload", b"")
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_STREAM_BYTES:
                return b"".join(chunks), f"stream longer than {MAX_STREAM_BYTES} bytes"
        elif "InvokeComplete" in event and event["InvokeComplete"].get("ErrorCode"):
            complete = event["InvokeComplete"]
            error = f"{complete['ErrorCode']}: {str(complete.get('ErrorDetails', ''))[:200]}"
    return b"".join(chunks), error


@tracer.capture_method(capture_response=False)
def read_back(probes: Sequence[EndToEndProbe], policy: RetryPolicy, readback: Readback) -> AwsFailure | None:
    """Read the probes' traces with BatchGetTraces until each tree is complete or the waits run out (FR-078).

    Returns the BatchGetTraces failure that stopped reading, if one did.
    """
    for _ in readback.attempts():
        pending = [probe for probe in probes if probe.waiting]
        if not pending:
            break
        try:
            found = _batch_get(sorted({probe.trace_id for probe in pending}), policy)
        except AwsCallError as error:
            mark_handled_failure(tracer, error.error)
            for probe in pending:
                probe.readback_failure = error.failure
            return error.failure
        for probe in pending:
            probe.observe(found.get(probe.trace_id, []))
    annotate(tracer, readback_attempts=readback.looks)
    return None


def _batch_get(trace_ids: list[str], policy: RetryPolicy) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = {}
    for start in range(0, len(trace_ids), BATCH_GET_LIMIT):
        chunk = trace_ids[start:start + BATCH_GET_LIMIT]
        token: str | None = None
        while True:
            response = call_aws("xray:BatchGetTraces", partial(_get, chunk, token), policy)
            for trace in response.get("Traces", []):
                documents = found.setdefault(str(trace.get("Id")), [])
                documents += [json.loads(segment["Document"]) for segment in trace.get("Segments", [])]
            token = response.get("NextToken")
            if not token:
                break
    return found


def _get(trace_ids: list[str], token: str | None) -> Any:
    xray = clients.xray()
    return xray.batch_get_traces(TraceIds=trace_ids, NextToken=token) if token else xray.batch_get_traces(
        TraceIds=trace_ids)


PROBE_PATH_DIMENSION = "ProbePath"


def probe_metric_data(probes: Sequence[EndToEndProbe]) -> list[MetricDatumTypeDef]:
    """Per path: `ProbeTreeComplete` (1/0: its Average over time is the ratio of complete trees) and
    `ProbeTreeLost` (1/0: nothing arrived); partial = 1 - complete - lost. A probe that was not
    invoked or not read back measured nothing and sends nothing."""
    data: list[MetricDatumTypeDef] = []
    for probe in probes:
        if probe.invoke_failure is not None or probe.verdict is None:
            continue
        for metric, value in ((CanaryMetric.PROBE_TREE_COMPLETE, probe.verdict.outcome is Outcome.COMPLETE),
                              (CanaryMetric.PROBE_TREE_LOST, probe.verdict.outcome is Outcome.LOST)):
            datum = metric_datum(metric, float(value), "None")
            datum["Dimensions"] = [*datum["Dimensions"], {"Name": PROBE_PATH_DIMENSION, "Value": probe.spec.path}]
            data.append(datum)
    return data
