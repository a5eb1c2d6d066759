"""SSE Lambda handler: parse the Function URL event, open the stream, return it for the runtime to stream.

The returned `StreamingResponse` is written by the container's `bootstrap` as the body is
produced (RESPONSE_STREAM); the stream phase is traced with OTel (see stream.py).

Example:
    >>> response = lambda_handler(function_url_event("GET", "/api/v2/stream"), context)   # doctest: +SKIP
    >>> response.status_code                                                               # doctest: +SKIP
    200
"""

from __future__ import annotations

from typing import Any

from lambdas.sse_streaming.response import StreamingResponse
from lambdas.sse_streaming.service import open_stream
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer, traced_handler

tracer = lambda_tracer(auto_patch=False)  # FR-060: the stream's AWS calls are OTel spans
logger = lambda_logger()


@traced_handler(tracer)
def lambda_handler(event: dict[str, Any], context: Any) -> StreamingResponse:
    response = open_stream(event, context)
    annotate(tracer, status_code=response.status_code)
    logger.info("stream request answered", extra={"status_code": response.status_code,
                                                   "path": str(event.get("rawPath", ""))[:200]})
    return response
