"""The dashboard API's published contract: every status each route answers, with its body's schema.

Powertools' resolver generates the OpenAPI document from the routes (`responses=` per route, the
request models from the annotations); this module holds what the routes declare:
- the error bodies: the function's `{"error", "message"}` (`ApiErrorBody`), and API Gateway's own
  `{"message"}` for what it answers before or instead of the function: 401 from the Cognito
  authorizer (`UNAUTHORIZED`), 429 from stage throttling (`THROTTLED`), both documented at
  https://docs.aws.amazon.com/apigateway/latest/developerguide/supported-gateway-response-types.html
  (`GatewayOrApiErrorBody` accepts either, for the statuses both can answer);
- `responses(...)`: the declaration of a route's statuses, with an example for each.
- `ContractResolver`: the resolver without the 422 Powertools declares for request validation
  (this API answers invalid input with 400, `lambdas.dashboard.errors`).

Every route may also be answered 403 by CloudFront (a method it does not forward), 413 (a body over
16 KB, checked before routing) and 429 (stage throttling), so these are declared everywhere. 404 for
an unknown path and 405 for another method on a known one (with `Allow`) answer no operation: they
are in `lambdas.dashboard.errors`, not in the document.

Example:
    >>> sorted(responses(200, 400, ok={"status": "ok"}))
    [200, 400, 403, 413, 429]
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools.event_handler.openapi.models import APIKey, APIKeyIn, OpenAPI
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel, Field

COGNITO_SCHEME = "cognitoIdToken"
# The Cognito authorizer's identity source: the ID token itself in Authorization (no "Bearer").
SECURITY_SCHEMES = {COGNITO_SCHEME: APIKey(**{"in": APIKeyIn.header}, name="Authorization",
                                           description="A Cognito user pool ID token (InitiateAuth's IdToken).")}
SIGNED_IN: list[dict[str, list[str]]] = [{COGNITO_SCHEME: []}]


class ApiErrorBody(BaseModel):
    """What the function answers for a client error."""

    error: str = Field(description="machine-readable code", examples=["invalid_request"])
    message: str = Field(description="what is wrong, for a person", examples=["query parameter 'limit': ..."])


class GatewayOrApiErrorBody(BaseModel):
    """API Gateway's own answer (`message` only), or the function's (`error` too)."""

    message: str = Field(examples=["Unauthorized"])
    error: str | None = Field(default=None, examples=["rule_limit"])


_DESCRIPTIONS = {
    200: "OK", 201: "Created", 204: "Deleted (no body)",
    400: "Invalid query, path or body (the function)",
    401: "No valid Cognito ID token (API Gateway's Cognito authorizer)",
    403: "CloudFront: a method the distribution does not forward (HTML); or, creating an alert rule, the "
         "signed-in user's email address is not verified (the function, JSON)",
    404: "Unknown ticker or alert rule (another user's rule included)",
    405: "Method not allowed on this path (with Allow)",
    413: "Request body over 16 KB",
    429: "Throttled by the stage, or over a per-user bound (Retry-After)",
}
_EXAMPLES: dict[int, dict[str, Any]] = {
    400: {"error": "invalid_request", "message": "query parameter 'limit': Input should be less than or equal to 100"},
    401: {"message": "Unauthorized"},
    403: {"error": "email_not_verified", "message": "verify your email address before creating alert rules"},
    404: {"error": "unknown_ticker", "message": "ticker ZZZ is not tracked"},
    413: {"error": "payload_too_large", "message": "request body is larger than 16384 bytes"},
    429: {"error": "rule_limit", "message": "at most 10 alert rules per user: delete one first"},
}
_GATEWAY_TOO = {401, 429}
ALWAYS = (403, 413, 429)
# CloudFront answers a method the distribution does not allow (TRACE, CONNECT, ...) with its own HTML 403.
# https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-403-invalid-method.html
_CLOUDFRONT_403 = {"schema": {"type": "string"}, "examples": {"invalid_method": {"value": "<html>...403 ERROR..."}}}


def responses(*statuses: int, ok: Any = None, ok_model: type[BaseModel] | None = None) -> dict[int, OpenAPIResponse]:
    """The `responses=` of a route answering `statuses` (plus 413 and 429); `ok` is the 2xx example."""
    declared: dict[int, OpenAPIResponse] = {}
    for status in sorted(set(statuses) | set(ALWAYS)):
        response: OpenAPIResponse = {"description": _DESCRIPTIONS[status]}
        if status < 300 and status != 204:
            content: dict[str, Any] = {"examples": {"ok": {"value": ok}}} if ok is not None else {}
            content["model" if ok_model else "schema"] = ok_model or {"type": "object"}
            response["content"] = {"application/json": content}  # type: ignore[typeddict-item]
        elif status >= 400:
            model = GatewayOrApiErrorBody if status in _GATEWAY_TOO else ApiErrorBody
            content = {"application/json": {"model": model, "examples": {"error": {"value": _EXAMPLES[status]}}}}
            if status == 403:
                content = {"text/html": _CLOUDFRONT_403, **(content if 403 in statuses else {})}
            response["content"] = content  # type: ignore[typeddict-item]
        if status == 429:
            response["headers"] = {"Retry-After": {"description": "seconds (per-user bounds)",
                                                   "schema": {"type": "integer"}}}
        declared[status] = response
    return declared


class ContractResolver(APIGatewayRestResolver):
    """Powertools' REST resolver whose OpenAPI document states this API's real statuses only."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> OpenAPI:
        schema = super().get_openapi_schema(*args, **kwargs)
        for path in (schema.paths or {}).values():
            for method in ("get", "put", "post", "delete", "head", "options"):
                operation = getattr(path, method)
                if operation is not None and operation.responses:
                    for key in (422, "422"):  # Powertools' request-validation answer; ours is 400
                        operation.responses.pop(key, None)  # type: ignore[call-overload]
        return schema
