"""The handler phase: route the request, authorise a config stream, take the environment's stream.

Traced by the Powertools Tracer without patching (FR-060: the stream's AWS calls are OTel spans,
and a patched botocore would record them twice). What follows the handler is `stream.py`.

- `GET /api/v2/stream`: every newly analysed item;
- `GET /api/v2/configurations/{alert_id}/stream`: the items of the alert's ticker, for the holder
  of the alert's stream token (`X-Auth-Token: <token>`: behind OAC, CloudFront's signature takes
  Authorization; checked against `stream_token_sha256`; 401 without or with a wrong token, 404 for an unknown alert);
- `GET /api/v2/stream/status`: `{"streams_per_environment", "poll_interval_s", "stream_lifetime_s"}`.

One stream per execution environment (connections.py); the cap on concurrent streams is the
function's reserved concurrency, enforced by Lambda (429 past it), not by this code.

The canary's probe (`x-canary-probe: <token>`, any route but status): the token must equal the
`token` of the secret CANARY_PROBE_SECRET_NAME (401 otherwise, or when probes are not configured);
the handler subsegment is annotated `synthetic=true` and the stream ends after CANARY_STREAM_S (one
poll cycle, its flush, the final `reconnect` event, reason deadline) instead of at the invocation's deadline.

Example:
    >>> response = open_stream(function_url_event("GET", "/api/v2/stream"), context)   # doctest: +SKIP
    >>> response.status_code, response.headers["content-type"]                          # doctest: +SKIP
    (200, 'text/event-stream; charset=utf-8')
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import time
from typing import Any

from lambdas.sse_streaming.connections import STREAMS_PER_ENVIRONMENT, Lease
from lambdas.sse_streaming.events import BEFORE_ALL, Position
from lambdas.sse_streaming.request import (
    NotFoundError,
    RequestError,
    StreamRequest,
    UnauthorizedError,
    parse_request,
)
from lambdas.sse_streaming.response import StreamingResponse, json_response
from lambdas.sse_streaming.settings import SseSettings
from lambdas.sse_streaming.stream import StreamPlan, stream_events
from lib.news.model import iso_ms
from lib.tracing.header import current_trace_id
from lib.tracing.otel import extract_invocation_parent
from lib.tracing.powertools import annotate, lambda_tracer
from lib.tracing.synthetic import mark_synthetic

tracer = lambda_tracer(auto_patch=False)  # FR-060

ALERT_PK = "alert"
CANARY_STREAM_S = 1.0  # a probe's stream: long enough for one poll cycle and its flush
PROBE_SECRET_MAX_AGE_S = 300  # the probe token is read once per 5 minutes per execution environment

_cold_start = True


def _take_cold_start() -> bool:
    """True for the execution environment's first invocation only (the process keeps this across warm ones)."""
    global _cold_start
    cold, _cold_start = _cold_start, False
    return cold


@tracer.capture_method
def authorize(settings: SseSettings, alert_id: str, token: str) -> str | RequestError:
    """The alert's ticker when `token` is its stream token, else the refusal to answer with."""
    from lib.tables import dynamodb  # deferred: boto3 (~0.2 s) is for config streams only

    row = dynamodb().Table(settings.config_table).get_item(Key={"pk": ALERT_PK, "sk": alert_id}).get("Item")
    if row is None:
        annotate(tracer, auth_outcome="unknown_alert")
        return NotFoundError("no such alert configuration")
    expected = row.get("stream_token_sha256")
    offered = hashlib.sha256(token.encode()).hexdigest()
    if not isinstance(expected, str) or not hmac.compare_digest(offered, expected):
        annotate(tracer, auth_outcome="wrong_token")
        return UnauthorizedError("the token does not open this alert's stream")
    annotate(tracer, auth_outcome="ok")
    return str(row["ticker"])


@tracer.capture_method
def authorize_probe(settings: SseSettings, token: str) -> RequestError | None:
    """None when `token` is the canary's probe token, else the refusal to answer with."""
    if settings.canary_probe_secret_name is None:
        annotate(tracer, probe_auth="not_configured")
        return UnauthorizedError("canary probes are not enabled on this function")
    # deferred: the package imports boto3 (~0.1 s, its AppConfig provider) and only probes read a secret
    from aws_lambda_powertools.utilities import parameters

    secret = parameters.get_secret(settings.canary_probe_secret_name, transform="json",
                                   max_age=PROBE_SECRET_MAX_AGE_S)
    expected = secret.get("token") if isinstance(secret, dict) else None
    if not isinstance(expected, str) or not expected or not hmac.compare_digest(token.encode(), expected.encode()):
        annotate(tracer, probe_auth="wrong_token")
        return UnauthorizedError("the canary probe token is not valid")
    annotate(tracer, probe_auth="ok")
    return None


@tracer.capture_method
def acquire(connection_id: str) -> Lease:
    """This environment's stream connection (FR-008: its id, and 1 of 1 streams in this environment)."""
    lease = Lease.acquire(connection_id)
    annotate(tracer, connection_id=connection_id, current_count=lease.current_count,
             max_connections=lease.max_connections)
    return lease


def _trace_headers() -> dict[str, str]:
    root = current_trace_id()
    return {"x-amzn-trace-id": f"Root={root}"} if root else {}


def _refusal(error: RequestError) -> StreamingResponse:
    return json_response(error.status, {"error": error.code, "message": error.message},
                         {**error.headers, **_trace_headers()})


def _annotate_request(request: StreamRequest) -> None:
    session = request.session
    values = {"route": request.route, "session_id": session.session_id,
              "previous_trace_id": session.previous_trace_id, "connection_sequence": session.connection_sequence}
    annotate(tracer, **{key: value for key, value in values.items() if value is not None})


def open_stream(event: Any, context: Any) -> StreamingResponse:
    """The response to one Function URL request: a refusal, the status JSON, or a live stream."""
    settings = SseSettings.from_env()
    is_cold_start = _take_cold_start()
    try:
        request = parse_request(event)
    except RequestError as error:
        return _refusal(error)
    _annotate_request(request)
    if request.route == "status":
        return json_response(200, {"streams_per_environment": STREAMS_PER_ENVIRONMENT,
                                   "poll_interval_s": settings.poll_interval_s,
                                   "stream_lifetime_s": settings.stream_lifetime_s}, _trace_headers())
    ticker = None
    if request.route == "config":
        assert request.alert_id is not None and request.bearer_token is not None
        outcome = authorize(settings, request.alert_id, request.bearer_token)
        if isinstance(outcome, RequestError):
            return _refusal(outcome)
        ticker = outcome
    if request.canary_token is not None:
        refusal = authorize_probe(settings, request.canary_token)
        if refusal is not None:
            return _refusal(refusal)
        mark_synthetic(tracer)  # on the handler subsegment: the trace is the canary's
    lease = acquire(context.aws_request_id)
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000
    if request.canary_token is not None:  # authorised above: a short stream, ended as at a deadline
        deadline = min(deadline, time.monotonic() + settings.deadline_margin_s + CANARY_STREAM_S)
    start = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=settings.index_settle_s)
    plan = StreamPlan(
        settings=settings, request=request, lease=lease,
        parent=extract_invocation_parent(),  # now, while _X_AMZN_TRACE_ID is this invocation's (FR-059)
        deadline_monotonic=deadline, cursor=request.last_event_id or Position(iso_ms(start), BEFORE_ALL),
        is_cold_start=is_cold_start, ticker=ticker,
    )
    headers = {"content-type": "text/event-stream; charset=utf-8", "cache-control": "no-cache",
               "x-sse-resume-supported": "true", **_trace_headers()}
    return StreamingResponse(200, headers, stream_events(plan), on_close=lease.release)
