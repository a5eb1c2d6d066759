"""The dashboard's JSON API (API Gateway REST proxy → this Lambda), on Powertools' APIGatewayRestResolver.

Routes and shapes: specs/contracts.md ("HTTP API"). This module holds the routes; the error model
(400/404/405/413 as `{"error", "message"}`, the one body-size guard) is `lambdas.dashboard.errors`.
Bad input never reaches a table and never gives a 500: query, path and body are checked by the
resolver's data validation (pydantic). What is not the client's fault (a DynamoDB failure) is not
caught: the invocation faults, X-Ray records it, and API Gateway answers 502.

CORS (Powertools' CORSConfig): the browser may send the trace header and the SSE client's headers
(FR-015) and may read `x-amzn-trace-id` (FR-082), which every response carries: the invocation's
trace Root, so the browser learns the trace that served it.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> with_trace_header(app.resolve(rest_proxy_event, context))   # doctest: +SKIP
    {'statusCode': 200, 'multiValueHeaders': {'x-amzn-trace-id': ['Root=1-...'], ...}, 'body': '...'}
"""

# No `from __future__ import annotations` here: the resolver reads the routes' annotations at
# runtime (through the Tracer's wrappers), and string annotations would not resolve there.

import datetime as dt
import os
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Annotated, Any, Literal

from aws_lambda_powertools.event_handler import CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.openapi.models import Server
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from lambdas.dashboard.caller import Caller, caller_from_claims
from lambdas.dashboard.contract import SECURITY_SCHEMES, SIGNED_IN, ContractResolver, responses
from lambdas.dashboard.errors import ApiError, MissingTraceContextError, register_error_handlers
from lib.alerts import ALERT_ID_PATTERN, TICKER_PATTERN, AlertTable, Direction, RuleLimitError
from lib.dashboard_queries import MAX_CURSOR_CHARS, DashboardReader, InvalidCursorError
from lib.news.model import Resolution
from lib.tracing.header import TraceHeader, current_trace_id
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer

tracer = lambda_tracer()
logger = lambda_logger()

MAX_TICKER_CHARS = 10
MAX_TICKERS_PER_REQUEST = 20
MAX_TICKERS_PARAM_CHARS = MAX_TICKERS_PER_REQUEST * (MAX_TICKER_CHARS + 1)
DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
TRACE_RESPONSE_HEADER = "x-amzn-trace-id"
# FR-015 / FR-048: what the browser's API and SSE clients send beyond CORS-safelisted headers
# (Powertools adds Authorization and Content-Type itself; listed anyway, they are ours too).
CORS_ALLOW_HEADERS = ["X-Amzn-Trace-Id", "Last-Event-ID", "X-SSE-Session-Id", "X-SSE-Previous-Trace-Id",
                      "X-SSE-Connection-Sequence", "Content-Type", "Authorization", "X-Auth-Token"]
CORS_MAX_AGE_S = 600


def cors_config() -> CORSConfig:
    """From `CORS_ALLOW_ORIGINS` (comma-separated; `*` for any origin)."""
    origins = [origin.strip() for origin in os.environ["CORS_ALLOW_ORIGINS"].split(",") if origin.strip()]
    if not origins:
        raise ValueError("CORS_ALLOW_ORIGINS names no origin")
    return CORSConfig(allow_origin=origins[0], extra_origins=origins[1:], allow_headers=CORS_ALLOW_HEADERS,
                      expose_headers=[TRACE_RESPONSE_HEADER], max_age=CORS_MAX_AGE_S)


app = ContractResolver(cors=cors_config(), enable_validation=True)
# The published contract: Swagger UI at /api/v2/docs, the OpenAPI document at /api/v2/docs?format=json.
OPENAPI_PATH = "/api/v2/docs"
app.enable_swagger(path=OPENAPI_PATH, title="sentiment-analyzer dashboard API", version="2", servers=[Server(url="/")],
                   description="Market news sentiment, and alert rules of signed-in users (specs/contracts.md).",
                   security_schemes=SECURITY_SCHEMES)

# Rule -> methods, for telling 405 from 404 (the resolver answers 404 to both).
_ROUTES: dict[str, set[str]] = defaultdict(set)


def endpoint(method: str, rule: str, **openapi: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`app.route` (with its OpenAPI `responses=`, `security=`...), remembering which methods each path has."""
    _ROUTES[rule].add(method)
    return app.route(rule, method=method, **openapi)


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


# A rule cap is not a rate: the client may create again once it deleted a rule. Retry-After still
# says when asking again is reasonable (the contract's one answer to "over a bound": 429).
RULE_LIMIT_RETRY_AFTER_S = 3600


def current_caller() -> Caller:
    """The signed-in user (API Gateway's Cognito authorizer's claims); 401 when there is none."""
    caller = caller_from_claims(app.current_event.request_context.authorizer.claims)
    if caller is None:
        raise ApiError(401, "unauthorized", "sign in: this route needs a Cognito ID token")
    return caller


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


@endpoint("GET", "/api/v2/health", responses=responses(200, ok={"status": "ok"}))
def health() -> dict[str, str]:
    """Liveness of the API path (gateway → function); touches no table."""
    return {"status": "ok"}


@endpoint("GET", "/api/v2/tickers", responses=responses(
    200, ok={"tickers": [{"ticker": "AAPL", "name": "Apple Inc."}]}))
@tracer.capture_method(capture_response=False)
def tickers() -> dict[str, Any]:
    found = reader().tickers()
    annotate(tracer, ticker_count=len(found))
    return {"tickers": found}


@endpoint("GET", "/api/v2/sentiment", responses=responses(200, 400, 404, ok={"sentiment": {"AAPL": {
    "latest": {"score": 0.42, "label": "positive", "analyzed_at": "2026-01-05T14:30:01.234Z"},
    "counts": {"positive": 3, "neutral": 1, "negative": 0}}}}))
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


@endpoint("GET", "/api/v2/items", responses=responses(200, 400, 404, ok={"items": [], "next_cursor": None}))
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


@endpoint("GET", "/api/v2/timeseries/<ticker>", responses=responses(
    200, 400, 404, ok={"ticker": "AAPL", "resolution": "5m", "buckets": []}))
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
    """`POST /api/v2/alerts` body. Strict: a threshold sent as a string is an error, not a guess. No
    `email`: a rule mails its owner's verified address, never one the request names."""

    model_config = ConfigDict(extra="forbid", strict=True)

    ticker: str = Field(max_length=MAX_TICKER_CHARS, pattern=TICKER_PATTERN)
    direction: Literal["above", "below"]
    threshold: float = Field(ge=-1, le=1, allow_inf_nan=False)


ALERT_EXAMPLE = {"alert_id": "0123456789abcdef0123456789abcdef", "ticker": "NVDA", "direction": "above",
                 "threshold": 0.5, "email": "analyst@example.com"}


@endpoint("GET", "/api/v2/alerts", security=SIGNED_IN, responses=responses(200, 401, ok={"alerts": [ALERT_EXAMPLE]}))
@tracer.capture_method(capture_response=False)
def list_alerts() -> dict[str, Any]:
    rules = alerts_table().owned_by(current_caller().sub)
    annotate(tracer, alert_count=len(rules))
    return {"alerts": [rule.public() for rule in rules]}


@endpoint("POST", "/api/v2/alerts", security=SIGNED_IN, responses=responses(
    201, 400, 401, 403, 404, 429, ok={**ALERT_EXAMPLE, "stream_token": "shown-once-token"}))
@tracer.capture_method(capture_response=False)
def create_alert(alert: Annotated[NewAlert, Body()]) -> Response[dict[str, Any]]:
    caller = current_caller()
    email = caller.verified_email
    if email is None:
        # An unconfirmed address gets nothing from us but Cognito's own verification message.
        raise ApiError(403, "email_not_verified", "verify your email address before creating alert rules")
    require_tracked(reader(), alert.ticker)
    try:
        rule, token = alerts_table().create(caller.sub, alert.ticker, Direction(alert.direction), alert.threshold,
                                            email, dt.datetime.now(dt.UTC))
    except RuleLimitError as error:
        raise ApiError(429, "rule_limit", f"{error}: delete one first",
                       headers={"Retry-After": str(RULE_LIMIT_RETRY_AFTER_S)}) from error
    annotate(tracer, alert_id=rule.alert_id, ticker=rule.ticker)
    logger.info("alert rule created", extra={"alert_id": rule.alert_id, "ticker": rule.ticker})
    # The stream token is shown this once; only its SHA-256 is stored.
    return Response(201, content_types.APPLICATION_JSON, {**rule.public(), "stream_token": token},
                    headers={"Location": f"/api/v2/alerts/{rule.alert_id}"})


@endpoint("DELETE", "/api/v2/alerts/<alert_id>", security=SIGNED_IN, responses=responses(204, 400, 401, 404))
@tracer.capture_method(capture_response=False)
def delete_alert(alert_id: Annotated[str, Path(pattern=ALERT_ID_PATTERN)]) -> Response[str]:
    annotate(tracer, alert_id=alert_id)
    # Another user's rule is "no such rule" (404, not 403): ids are not confirmed to strangers.
    if not alerts_table().delete(current_caller().sub, alert_id):
        raise ApiError(404, "alert_not_found", f"no alert rule {alert_id}")
    logger.info("alert rule deleted", extra={"alert_id": alert_id})
    return Response(204, None, "")


register_error_handlers(app, allowed_methods, tracer, logger)


def with_trace_header(response: dict[str, Any]) -> dict[str, Any]:
    """Add `x-amzn-trace-id: Root=<this invocation's trace id>` to a resolver response."""
    root = current_trace_id()
    if root is None:
        raise MissingTraceContextError("_X_AMZN_TRACE_ID is not set: the function must run with active tracing")
    response.setdefault("multiValueHeaders", {})[TRACE_RESPONSE_HEADER] = [TraceHeader(root=root).format()]
    return response
