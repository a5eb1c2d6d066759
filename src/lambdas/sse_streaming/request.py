"""The Function URL request (payload v2.0) as the SSE function understands it.

The event is read into `FunctionUrlRequest`, the four fields this function uses, each checked (a
malformed event raises `MalformedEventError`: Lambda records the failure). Not the Powertools
parser (its pydantic import cost ~50 ms of every cold start) nor its data classes (the package
imports all forty event classes, ~35 ms, for one): benchmarks/RESULTS.md, section 2. The payload
is AWS's format 2.0: https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html (header
names arrive lower-cased). What a client controls (path, method,
headers) is checked here and refused with a typed `RequestError` that becomes a 4xx: never
guessed, never a crash.

Example:
    >>> event = function_url_event("GET", "/api/v2/stream", {"x-sse-connection-sequence": "2"})  # doctest: +SKIP
    >>> request = parse_request(event)                                                         # doctest: +SKIP
    >>> request.route, request.session.connection_sequence                                     # doctest: +SKIP
    ('global', 2)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lambdas.sse_streaming.events import InvalidEventIdError, Position, parse_event_id
from lib.tracing.header import TRACE_ID
from lib.tracing.synthetic import probe_header

Route = Literal["global", "config", "status"]

GLOBAL_STREAM = "/api/v2/stream"
STATUS = "/api/v2/stream/status"
CONFIG_STREAM = re.compile(r"^/api/v2/configurations/(?P<alert_id>[^/]+)/stream$")
ALERT_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")  # the browser's is a UUID
CONNECTION_SEQUENCE = re.compile(r"^[1-9][0-9]{0,8}$")
# The per-alert stream's token: in X-Auth-Token, because behind CloudFront's origin access control the
# signature CloudFront adds takes the Authorization header ("Always sign origin requests" overwrites
# a viewer's Authorization):
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-lambda.html
TOKEN_HEADER = "x-auth-token"
STREAM_TOKEN = re.compile(r"^[A-Za-z0-9._~+/=-]{1,512}$")


class MalformedEventError(ValueError):
    """The invocation's event is not a Function URL request (payload 2.0): an invocation error."""


@dataclass(frozen=True)
class FunctionUrlRequest:
    """What this function reads of a Function URL event."""

    raw_path: str
    method: str
    request_id: str
    headers: dict[str, str]  # lower-cased names


def read_function_url_event(event: Any) -> FunctionUrlRequest:
    """The fields of `event` this function reads, once each has its type.

    Example:
        >>> read_function_url_event({"rawPath": "/api/v2/stream"})
        Traceback (most recent call last):
        ...
        lambdas.sse_streaming.request.MalformedEventError: requestContext must be an object
    """
    if not isinstance(event, dict):
        raise MalformedEventError(f"the event must be an object, not {type(event).__name__}")
    context = event.get("requestContext")
    if not isinstance(context, dict):
        raise MalformedEventError("requestContext must be an object")
    http = context.get("http")
    checks = {"rawPath": event.get("rawPath"), "requestContext.requestId": context.get("requestId"),
              "requestContext.http.method": http.get("method") if isinstance(http, dict) else None}
    for name, value in checks.items():
        if not isinstance(value, str):
            raise MalformedEventError(f"{name} must be a string")
    headers = {} if event.get("headers") is None else event["headers"]
    if not isinstance(headers, dict) or not all(isinstance(value, str) for value in headers.values()):
        raise MalformedEventError("headers must be an object of strings")
    assert isinstance(http, dict)  # checked above, through `checks`
    return FunctionUrlRequest(event["rawPath"], http["method"], context["requestId"],
                              {name.lower(): value for name, value in headers.items()})


class RequestError(Exception):
    """A request the function refuses; `status` is the HTTP status it answers with."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, headers: Mapping[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = dict(headers or {})


class BadRequestError(RequestError):
    status, code = 400, "bad_request"


class UnauthorizedError(RequestError):
    status, code = 401, "unauthorized"

    def __init__(self, message: str):
        super().__init__(message, {"www-authenticate": 'X-Auth-Token realm="sse"'})


class NotFoundError(RequestError):
    status, code = 404, "not_found"


class MethodNotAllowedError(RequestError):
    status, code = 405, "method_not_allowed"

    def __init__(self, message: str):
        super().__init__(message, {"allow": "GET"})


@dataclass(frozen=True)
class SessionHeaders:
    """FR-048: the browser's reconnection correlation (annotations on the stream)."""

    session_id: str | None = None
    previous_trace_id: str | None = None
    connection_sequence: int | None = None


@dataclass(frozen=True)
class StreamRequest:
    route: Route
    request_id: str
    alert_id: str | None = None
    bearer_token: str | None = None
    last_event_id: Position | None = None
    session: SessionHeaders = SessionHeaders()
    canary_token: str | None = None  # `x-canary-probe`: the canary's secret, checked by the service


def _route(method: str, path: str) -> tuple[Route, str | None]:
    if path == GLOBAL_STREAM:
        route: Route = "global"
        alert_id = None
    elif path == STATUS:
        route, alert_id = "status", None
    elif match := CONFIG_STREAM.match(path):
        alert_id = match["alert_id"]
        if not ALERT_ID.match(alert_id):
            raise NotFoundError("no such alert configuration")
        route = "config"
    else:
        raise NotFoundError(f"no SSE route for {path[:100]!r}")
    if method != "GET":
        raise MethodNotAllowedError(f"{path} accepts GET only")
    return route, alert_id


def _session(headers: Mapping[str, str]) -> SessionHeaders:
    session_id = headers.get("x-sse-session-id")
    if session_id is not None and not SESSION_ID.match(session_id):
        raise BadRequestError("X-SSE-Session-Id must be 1-64 letters, digits, '-' or '_'")
    previous = headers.get("x-sse-previous-trace-id")
    if previous is not None and not TRACE_ID.match(previous.strip()):
        raise BadRequestError("X-SSE-Previous-Trace-Id must be an X-Ray trace id (1-<8 hex>-<24 hex>)")
    sequence = headers.get("x-sse-connection-sequence")
    if sequence is not None and not CONNECTION_SEQUENCE.match(sequence.strip()):
        raise BadRequestError("X-SSE-Connection-Sequence must be a positive integer")
    return SessionHeaders(session_id, previous.strip() if previous else None,
                          int(sequence) if sequence is not None else None)


def parse_request(event: Any) -> StreamRequest:
    """The request of a Function URL event; RequestError (4xx) for what the client got wrong."""
    request = read_function_url_event(event)
    headers = request.headers
    route, alert_id = _route(request.method, request.raw_path)
    session = _session(headers)
    last_event_id = None
    raw = headers.get("last-event-id", "").strip()
    if raw and route != "status":
        try:
            last_event_id = parse_event_id(raw)
        except InvalidEventIdError as error:
            raise BadRequestError(str(error)) from error
    token = None
    if route == "config":
        offered = headers.get(TOKEN_HEADER)
        if offered is None:
            raise UnauthorizedError("this stream needs X-Auth-Token: <the rule's stream token>")
        if STREAM_TOKEN.match(offered.strip()) is None:
            raise UnauthorizedError("X-Auth-Token is not a stream token")
        token = offered.strip()
    return StreamRequest(route, request.request_id, alert_id, token, last_event_id, session,
                         probe_header(headers))
