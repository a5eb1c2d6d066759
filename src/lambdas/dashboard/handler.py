"""Dashboard Lambda handler: an API Gateway REST proxy event in, the API's answer out (lambdas.dashboard.api).

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> lambda_handler({"httpMethod": "GET", "path": "/api/v2/health", ...}, context)   # doctest: +SKIP
    {'statusCode': 200, 'multiValueHeaders': {'x-amzn-trace-id': ['Root=1-...'], ...}, 'body': '{"status":"ok"}', ...}
"""

from __future__ import annotations

from typing import Any

from lambdas.dashboard.api import app, with_trace_header
from lib.tracing.powertools import lambda_logger, lambda_tracer, traced_handler
from lib.tracing.synthetic import mark_synthetic, probe_header

tracer = lambda_tracer()
logger = lambda_logger()


class NotAnApiGatewayEventError(ValueError):
    """The function was invoked with something other than a REST proxy event."""


@traced_handler(tracer)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if not isinstance(event, dict) or not isinstance(event.get("httpMethod"), str) or not isinstance(
            event.get("path"), str):
        raise NotAnApiGatewayEventError("event is not an API Gateway REST proxy event (httpMethod, path)")
    if probe_header(event.get("headers")) is not None:  # the canary's probe: kept out of dashboards
        mark_synthetic(tracer)
    return with_trace_header(app.resolve(event, context))
