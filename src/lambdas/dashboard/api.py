"""The dashboard's JSON API (API Gateway REST proxy → this Lambda), on Powertools' APIGatewayRestResolver.

Routes and shapes: specs/contracts.md ("HTTP API"). Bad input never reaches a table and never
gives a 500: query, path and body are checked by the resolver's data validation (pydantic) and
answered 400 `{"error", "message"}` naming the parameter and what is wrong; an unknown ticker or
alert is 404, a known path with another method 405 (with `Allow`), a body over 16 KB 413.
What is not the client's fault (a DynamoDB failure) is not caught: the invocation faults, X-Ray
records it, and API Gateway answers 502; never a swallowed error with a 200.

CORS (Powertools' CORSConfig): the browser may send the trace header and the SSE client's headers
(FR-015) and may read `x-amzn-trace-id` (FR-082), which every response carries: the invocation's
trace Root, so the browser learns the trace that served it.

Example:
    >>> with_trace_header(app.resolve(rest_proxy_event, context))   # doctest: +SKIP
    {'statusCode': 200, 'multiValueHeaders': {'x-amzn-trace-id': ['Root=1-...'], ...}, 'body': '...'}
"""

# No `from __future__ import annotations` here: the resolver reads the routes' annotations at
# runtime (through the Tracer's wrappers), and string annotations would not resolve there.

import binascii
import datetime as dt
import os
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent
from pydantic import BaseModel, ConfigDict, Field

from lib.alerts import (
    ALERT_ID_PATTERN,
    EMAIL_PATTERN,
    MAX_EMAIL_CHARS,
    TICKER_PATTERN,
    AlertTable,
    Direction,
)
from lib.dashboard_queries import MAX_CURSOR_CHARS, DashboardReader, InvalidCursorError
from lib.news.model import Resolution
from lib.tracing.bounds import truncate_message
from lib.tracing.header import TraceHeader, current_trace_id
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer

tracer = lambda_tracer()
logger = lambda_logger()

MAX_BODY_BYTES = 16 * 1024
MAX_TICKER_CHARS = 10
MAX_TICKERS_PER_REQUEST = 20
MAX_TICKERS_PARAM_CHARS = MAX_TICKERS_PER_REQUEST * (MAX_TICKER_CHARS + 1)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
MAX_ERRORS_REPORTED = 5
TRACE_RESPONSE_HEADER = "x-amzn-trace-id"
# FR-015 / FR-048: what the browser's API and SSE clients send beyond CORS-safelisted headers
# (Powertools adds Authorization and Content-Type itself; listed anyway, they are ours too).
CORS_ALLOW_HEADERS = ["X-Amzn-Trace-Id", "Last-Event-ID", "X-SSE-Session-Id", "X-SSE-Previous-Trace-Id",
                      "X-SSE-Connection-Sequence", "Content-Type", "Authorization"]
CORS_MAX_AGE_S = 600


class ApiError(Exception):
    """An answer for the client: `status` with `{"error": code, "message": message}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


class MissingTraceContextError(RuntimeError):
    """The function runs without `_X_AMZN_TRACE_ID`: active tracing is off (a deployment error)."""


def cors_config() -> CORSConfig:
    """From `CORS_ALLOW_ORIGINS` (comma-separated; `*` for any origin)."""
    origins = [origin.strip() for origin in os.environ["CORS_ALLOW_ORIGINS"].split(",") if origin.strip()]
    if not origins:
        raise ValueError("CORS_ALLOW_ORIGINS names no origin")
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:], allow_headers=CORS_ALLOW_HEADERS,
                      expose_headers=[TRACE_RESPONSE_HEADER], max_age=CORS_MAX_AGE_S)


app = APIGatewayRestResolver(cors=cors_config(), enable_validation=True)

# Rule -> methods, for telling 405 from 404 (the resolver answers 404 to both).
_ROUTES: dict[str, set[str]] = defaultdict(set)


def endpoint(method: str, rule: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`app.route`, remembering which methods each path has."""
    _ROUTES[rule].add(method)
    return app.route(rule, method=method)


def allowed_methods(path: str) -> set[str]:
    """Methods of the routes whose rule matches `path` (empty: no such path)."""
    methods: set[str] = set()
    for rule, rule_methods in _ROUTES.items():
        if re.fullmatch(re.sub(r"<\w+>", "[^/]+", re.escape(rule)), path):
            methods |= rule_methods
    return methods


def reader() -> DashboardReader:
    return DashboardReader(os.environ["NEWS_TABLE"], os.environ["TIMESERIES_TABLE"], os.environ["CONFIG_TABLE"])


def alerts_table() -> AlertTable:
    return AlertTable(os.environ["CONFIG_TABLE"])


def require_tracked(source: DashboardReader, ticker: str) -> None:
    if not source.is_tracked(ticker):
        raise ApiError(404, "unknown_ticker", f"ticker {ticker} is not tracked")


def parse_ticker_list(value: str) -> list[str]:
    """`AAPL,MSFT` → ["AAPL", "MSFT"] (order kept, duplicates dropped); ApiError 400 otherwise."""
    tickers: list[str] = []
    for part in value.split(","):
        ticker = part.strip()
        if not re.match(TICKER_PATTERN, ticker):
            raise ApiError(400, "invalid_request", "query parameter 'tickers': a comma-separated list of "
                           "ticker symbols (upper-case letters, digits, '.', '-'; at most 10 characters each)")
        if ticker not in tickers:
            tickers.append(ticker)
    if len(tickers) > MAX_TICKERS_PER_REQUEST:
        raise ApiError(400, "invalid_request", f"query parameter 'tickers': at most {MAX_TICKERS_PER_REQUEST} tickers")
    return tickers


# Routes ---------------------------------------------------------------------------------------------

TickerQuery = Annotated[str, Query(max_length=MAX_TICKER_CHARS, pattern=TICKER_PATTERN)]


@endpoint("GET", "/api/v2/health")
def health() -> dict[str, str]:
    """Liveness of the API path (gateway → function); touches no table."""
    return {"status": "ok"}


@endpoint("GET", "/api/v2/tickers")
@tracer.capture_method(capture_response=False)
def tickers() -> dict[str, Any]:
    found = reader().tickers()
    annotate(tracer, ticker_count=len(found))
    return {"tickers": found}


@endpoint("GET", "/api/v2/sentiment")
@tracer.capture_method(capture_response=False)
def sentiment(tickers: Annotated[str, Query(min_length=1, max_length=MAX_TICKERS_PARAM_CHARS)]) -> dict[str, Any]:
    symbols = parse_ticker_list(tickers)
    source = reader()
    tracked = {entry["ticker"] for entry in source.tickers()}
    unknown = [symbol for symbol in symbols if symbol not in tracked]
    if unknown:
        raise ApiError(404, "unknown_ticker", f"not tracked: {', '.join(unknown)}")
    now = dt.datetime.now(dt.UTC)
    annotate(tracer, ticker_count=len(symbols))
    return {"sentiment": {symbol: {"latest": source.latest(symbol), "counts": source.counts(symbol, now)}
                          for symbol in symbols}}


@endpoint("GET", "/api/v2/items")
@tracer.capture_method(capture_response=False)
def items(
    ticker: TickerQuery,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(min_length=1, max_length=MAX_CURSOR_CHARS)] = None,
) -> dict[str, Any]:
    source = reader()
    require_tracked(source, ticker)
    try:
        page, next_cursor = source.items(ticker, limit, cursor)
    except InvalidCursorError as error:
        raise ApiError(400, "invalid_cursor", f"query parameter 'cursor': {error}") from error
    annotate(tracer, ticker=ticker, item_count=len(page), has_more=next_cursor is not None)
    return {"items": page, "next_cursor": next_cursor}


@endpoint("GET", "/api/v2/timeseries/<ticker>")
@tracer.capture_method(capture_response=False)
def timeseries(
    ticker: Annotated[str, Path(max_length=MAX_TICKER_CHARS, pattern=TICKER_PATTERN)],
    resolution: Annotated[Resolution, Query()],
) -> dict[str, Any]:
    source = reader()
    require_tracked(source, ticker)
    buckets = source.series(ticker, resolution, dt.datetime.now(dt.UTC))
    annotate(tracer, ticker=ticker, resolution=str(resolution), bucket_count=len(buckets))
    return {"ticker": ticker, "resolution": str(resolution), "buckets": buckets}


class NewAlert(BaseModel):
    """`POST /api/v2/alerts` body. Strict: a threshold sent as a string is an error, not a guess."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ticker: str = Field(max_length=MAX_TICKER_CHARS, pattern=TICKER_PATTERN)
    direction: Literal["above", "below"]
    threshold: float = Field(ge=-1, le=1, allow_inf_nan=False)
    email: str = Field(max_length=MAX_EMAIL_CHARS, pattern=EMAIL_PATTERN)


@endpoint("GET", "/api/v2/alerts")
@tracer.capture_method(capture_response=False)
def list_alerts() -> dict[str, Any]:
    rules = alerts_table().all()
    annotate(tracer, alert_count=len(rules))
    return {"alerts": [rule.public() for rule in rules]}


@endpoint("POST", "/api/v2/alerts")
@tracer.capture_method(capture_response=False)
def create_alert(alert: Annotated[NewAlert, Body()]) -> Response[dict[str, Any]]:
    require_tracked(reader(), alert.ticker)
    rule, token = alerts_table().create(alert.ticker, Direction(alert.direction), alert.threshold, alert.email,
                                        dt.datetime.now(dt.UTC))
    annotate(tracer, alert_id=rule.alert_id, ticker=rule.ticker)
    logger.info("alert rule created", extra={"alert_id": rule.alert_id, "ticker": rule.ticker})
    # The stream token is shown this once; only its SHA-256 is stored.
    return Response(201, content_types.APPLICATION_JSON, {**rule.public(), "stream_token": token},
                    headers={"Location": f"/api/v2/alerts/{rule.alert_id}"})


@endpoint("DELETE", "/api/v2/alerts/<alert_id>")
@tracer.capture_method(capture_response=False)
def delete_alert(alert_id: Annotated[str, Path(pattern=ALERT_ID_PATTERN)]) -> Response[str]:
    annotate(tracer, alert_id=alert_id)
    if not alerts_table().delete(alert_id):
        raise ApiError(404, "alert_not_found", f"no alert rule {alert_id}")
    logger.info("alert rule deleted", extra={"alert_id": alert_id})
    return Response(204, None, "")


# Errors ---------------------------------------------------------------------------------------------

def request_body_bytes(event: APIGatewayProxyEvent) -> int:
    """The body's size in bytes; for a base64 body, from its length (decoding could fail: not a 5xx)."""
    body = event.body or ""
    if event.is_base64_encoded:
        return len(body) * 3 // 4
    return len(body.encode())


def payload_too_large() -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes")


def reject_large_bodies(resolver: APIGatewayRestResolver, next_middleware: Callable[..., Any]) -> Any:
    """413 for a body over 16 KB on any route (the validation errors' handler checks it first too)."""
    if request_body_bytes(resolver.current_event) > MAX_BODY_BYTES:
        raise payload_too_large()
    return next_middleware(resolver)


app.use(middlewares=[reject_large_bodies])


def error_response(error: ApiError) -> Response[dict[str, str]]:
    annotate(tracer, api_error=error.code, http_status=error.status)
    logger.info("request rejected", extra={"status": error.status, "error": error.code,
                                           "method": app.current_event.http_method,
                                           "path": truncate_message(app.current_event.path, 200)})
    return Response(error.status, content_types.APPLICATION_JSON, {"error": error.code, "message": error.message},
                    headers=error.headers)


@app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
def handle_api_error(error: ApiError) -> Response[dict[str, str]]:
    return error_response(error)


_LOCATIONS = {"query": "query parameter", "path": "path parameter", "body": "body field"}


def describe_validation_error(error: dict[str, Any]) -> str:
    """`query parameter 'limit': Input should be a valid integer` (never the input itself: it may be 10 KB)."""
    location = [str(part) for part in error.get("loc", ())]
    if error.get("type") == "json_invalid":
        detail = (error.get("ctx") or {}).get("error", "")
        return f"request body is not valid JSON: {detail}".rstrip(": ")
    if location[:1] == ["body"] and len(location) == 1:
        return f"request body: {error.get('msg')}"
    kind = _LOCATIONS.get(location[0], location[0]) if location else "request"
    name = ".".join(location[1:])
    return f"{kind} '{name}': {error.get('msg')}"


@app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
def handle_invalid_request(error: RequestValidationError) -> Response[dict[str, str]]:
    # Validation runs before the middlewares: an oversized body is reported as such, not as its content.
    if request_body_bytes(app.current_event) > MAX_BODY_BYTES:
        return error_response(payload_too_large())
    errors = list(error.errors())
    code = "invalid_json" if any(e.get("type") == "json_invalid" for e in errors) else "invalid_request"
    message = "; ".join(describe_validation_error(e) for e in errors[:MAX_ERRORS_REPORTED])
    return error_response(ApiError(400, code, truncate_message(message, 1000)))


@app.exception_handler([UnicodeDecodeError, binascii.Error])  # type: ignore[untyped-decorator]
def handle_unreadable_body(_: ValueError) -> Response[dict[str, str]]:
    """The resolver decodes the body before validating it: bytes that are not UTF-8 are the client's error."""
    if request_body_bytes(app.current_event) > MAX_BODY_BYTES:
        return error_response(payload_too_large())
    return error_response(ApiError(400, "invalid_json", "request body is not UTF-8 encoded JSON"))


@app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
def handle_unsupported_content_type(_: RequestUnsupportedContentType) -> Response[dict[str, str]]:
    # 400, not 415: the contract's error statuses are 400/404/405/413.
    if request_body_bytes(app.current_event) > MAX_BODY_BYTES:
        return error_response(payload_too_large())
    message = "request body must be JSON (Content-Type: application/json)"
    return error_response(ApiError(400, "invalid_request", message))


@app.not_found
def handle_no_route(_: NotFoundError) -> Response[dict[str, str]]:
    method = app.current_event.http_method.upper()
    path = app.current_event.path
    shown = truncate_message(path, 200)
    methods = allowed_methods(path)
    if methods:
        allow = ", ".join(sorted(methods | {"OPTIONS"}))
        message = f"{method} is not allowed on {shown} (allowed: {allow})"
        return error_response(ApiError(405, "method_not_allowed", message, headers={"Allow": allow}))
    return error_response(ApiError(404, "not_found", f"no such path: {shown}"))


def with_trace_header(response: dict[str, Any]) -> dict[str, Any]:
    """Add `x-amzn-trace-id: Root=<this invocation's trace id>` to a resolver response."""
    root = current_trace_id()
    if root is None:
        raise MissingTraceContextError("_X_AMZN_TRACE_ID is not set: the function must run with active tracing")
    response.setdefault("multiValueHeaders", {})[TRACE_RESPONSE_HEADER] = [TraceHeader(root=root).format()]
    return response
