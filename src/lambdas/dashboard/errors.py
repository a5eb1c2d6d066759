"""The dashboard API's error model: every answer that is the client's fault, in one shape.

`{"error": <code>, "message": <what is wrong>}` with 400 (bad query, path or body; invalid JSON),
401/403/429 (the alert routes: no caller, an unverified address, the rule cap; lambdas.dashboard.api),
404 (unknown path, ticker or alert), 405 (known path, other method; with `Allow`) or 413 (a body over
16 KB). `ApiError` is a Powertools `ServiceError` (the event handler's own HTTP error family), with
the contract's error code; its handler renders the contract's shape instead of Powertools' default
`{"statusCode", "message"}`. What is not the client's fault is not handled here: it faults the
invocation and API Gateway answers 502.

One body-size guard (`oversized_body`) answers 413 before anything reads the body: the middleware
for the routes, and the handlers of the errors the resolver raises while it validates and decodes
the body (those run before any middleware).

Example:
    >>> error = ApiError(404, "unknown_ticker", "ticker ZZZ is not tracked")
    >>> error.status_code, error.code, error.msg
    (404, 'unknown_ticker', 'ticker ZZZ is not tracked')
    >>> describe_validation_error({"loc": ("query", "limit"), "msg": "Input should be a valid integer"})
    "query parameter 'limit': Input should be a valid integer"
"""

from __future__ import annotations

import binascii
import functools
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError, ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from lib.tracing.bounds import truncate_message
from lib.tracing.powertools import annotate

MAX_BODY_BYTES = 16 * 1024
MAX_ERRORS_REPORTED = 5
_LOCATIONS = {"query": "query parameter", "path": "path parameter", "body": "body field"}

Failure = TypeVar("Failure", bound=BaseException)


class ApiError(ServiceError):
    """An answer for the client: `status` with `{"error": code, "message": message}`."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(status, message)
        self.code = code
        self.headers = headers or {}

    def __str__(self) -> str:
        return str(self.msg)


class MissingTraceContextError(RuntimeError):
    """The function runs without `_X_AMZN_TRACE_ID`: active tracing is off (a deployment error)."""


def request_body_bytes(event: APIGatewayProxyEvent) -> int:
    """The body's size in bytes; for a base64 body, from its length (decoding could fail: not a 5xx)."""
    body = event.body or ""
    if event.is_base64_encoded:
        return len(body) * 3 // 4
    return len(body.encode())


def oversized_body(event: APIGatewayProxyEvent) -> ApiError | None:
    """The one body-size guard: a 413 for a body over MAX_BODY_BYTES, else None."""
    if request_body_bytes(event) > MAX_BODY_BYTES:
        return ApiError(413, "payload_too_large", f"request body is larger than {MAX_BODY_BYTES} bytes")
    return None


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


def register_error_handlers(app: APIGatewayRestResolver, allowed_methods: Callable[[str], set[str]],
                            tracer: Tracer, logger: Logger) -> None:
    """Answer every client error of `app` in the contract's shape (`allowed_methods`: 405 vs 404)."""

    def error_response(error: ApiError) -> Response[dict[str, str]]:
        annotate(tracer, api_error=error.code, http_status=error.status_code)
        logger.info("request rejected", extra={"status": error.status_code, "error": error.code,
                                               "method": app.current_event.http_method,
                                               "path": truncate_message(app.current_event.path, 200)})
        return Response(error.status_code, content_types.APPLICATION_JSON,
                        {"error": error.code, "message": str(error.msg)}, headers=error.headers)

    def body_size_first(
        handler: Callable[[Failure], ApiError],
    ) -> Callable[[Failure], Response[dict[str, str]]]:
        """The resolver validates and decodes the body before any middleware runs: an oversized body is
        reported as such, not as its content."""

        @functools.wraps(handler)
        def guarded(error: Failure) -> Response[dict[str, str]]:
            return error_response(oversized_body(app.current_event) or handler(error))

        return guarded

    def reject_large_bodies(resolver: APIGatewayRestResolver, next_middleware: Callable[..., Any]) -> Any:
        too_large = oversized_body(resolver.current_event)
        if too_large is not None:
            raise too_large
        return next_middleware(resolver)

    app.use(middlewares=[reject_large_bodies])

    @app.exception_handler(ApiError)  # type: ignore[untyped-decorator]
    def handle_api_error(error: ApiError) -> Response[dict[str, str]]:
        return error_response(error)

    @app.exception_handler(RequestValidationError)  # type: ignore[untyped-decorator]
    @body_size_first
    def handle_invalid_request(error: RequestValidationError) -> ApiError:
        errors = list(error.errors())
        code = "invalid_json" if any(e.get("type") == "json_invalid" for e in errors) else "invalid_request"
        message = "; ".join(describe_validation_error(e) for e in errors[:MAX_ERRORS_REPORTED])
        return ApiError(400, code, truncate_message(message, 1000))

    @app.exception_handler([UnicodeDecodeError, binascii.Error])  # type: ignore[untyped-decorator]
    @body_size_first
    def handle_unreadable_body(_: ValueError) -> ApiError:
        return ApiError(400, "invalid_json", "request body is not UTF-8 encoded JSON")

    @app.exception_handler(ValueError)  # type: ignore[untyped-decorator]
    def handle_multipart_body(error: ValueError) -> Response[dict[str, str]]:
        """Powertools parses a multipart/form-data body itself and raises a bare ValueError on a missing
        boundary: for this JSON-only API that is the client's unsupported body (400). Any other ValueError
        is not the client's fault and faults the invocation as before."""
        headers = app.current_event.headers or {}
        content_type = next((value for name, value in headers.items() if name.lower() == "content-type"), "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise error
        return error_response(oversized_body(app.current_event) or ApiError(
            400, "invalid_request", "request body must be JSON (Content-Type: application/json)"))

    @app.exception_handler(RequestUnsupportedContentType)  # type: ignore[untyped-decorator]
    @body_size_first
    def handle_unsupported_content_type(_: RequestUnsupportedContentType) -> ApiError:
        # 400, not 415: the contract's error statuses are 400/404/405/413.
        return ApiError(400, "invalid_request", "request body must be JSON (Content-Type: application/json)")

    @app.not_found
    def handle_no_route(_: NotFoundError) -> Response[dict[str, str]]:
        method = app.current_event.http_method.upper()
        path = app.current_event.path
        shown = truncate_message(path, 200)
        methods = allowed_methods(path)
        if method in methods:
            # The path has this method's route, but a parameter the resolver's route pattern refuses
            # (characters outside a URL path segment's): the parameter is invalid, not the method.
            return error_response(ApiError(400, "invalid_request", f"path parameter of {shown}: not a valid value"))
        if methods:
            allow = ", ".join(sorted(methods | {"OPTIONS"}))
            message = f"{method} is not allowed on {shown} (allowed: {allow})"
            return error_response(ApiError(405, "method_not_allowed", message, headers={"Allow": allow}))
        return error_response(ApiError(404, "not_found", f"no such path: {shown}"))
