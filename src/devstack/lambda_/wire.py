"""The Runtime API's wire literals, in one place: paths, headers, content types, the prelude delimiter.

The endpoint (`runtime_api.RuntimeApi`), the caller's stream parser (`response_stream`) and the tests
use these. `docker/sse/bootstrap` ships alone in the image and keeps its own copies;
`tests/devstack/test_wire_drift.py` parses the bootstrap and fails when the two disagree.

Sources: the Runtime API reference, https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html
(paths, the `Lambda-Runtime-*` invocation headers, `Lambda-Runtime-Function-Error-Type`,
`Lambda-Runtime-Function-XRay-Error-Cause`), and
"Implementing response streaming in a custom runtime",
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-custom.html#runtimes-custom-response-streaming
(the response mode header, chunked encoding, the error trailers). The HTTP integration content type
and the 8-NUL prelude delimiter are what AWS's own runtime clients write (awslambdaric, the Node.js
runtime's `HttpResponseStream`); AWS documents them only through those clients.

Example:
    >>> invocation_path("next")
    '/2018-06-01/runtime/invocation/next'
    >>> invocation_path("response", "req-1")
    '/2018-06-01/runtime/invocation/req-1/response'
"""

from __future__ import annotations

API_PREFIX = "/2018-06-01/runtime"
NEXT_PATH = f"{API_PREFIX}/invocation/next"
INIT_ERROR_PATH = f"{API_PREFIX}/init/error"

# Headers of `GET .../invocation/next` (the invocation's identity, deadline, trace and ARN).
REQUEST_ID_HEADER = "Lambda-Runtime-Aws-Request-Id"
DEADLINE_HEADER = "Lambda-Runtime-Deadline-Ms"
TRACE_ID_HEADER = "Lambda-Runtime-Trace-Id"
FUNCTION_ARN_HEADER = "Lambda-Runtime-Invoked-Function-Arn"

# What a runtime sends back.
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"  # "streaming" for RESPONSE_STREAM
STREAMING_MODE = "streaming"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"  # a header on /error, a trailer on a stream
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"  # base64 JSON, a trailer on a stream
XRAY_ERROR_CAUSE_HEADER = "Lambda-Runtime-Function-XRay-Error-Cause"  # on /error: the function segment's cause
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\x00" * 8  # between the JSON prelude (status, headers, cookies) and the body


# The Extensions API, served on the same endpoint (AWS_LAMBDA_RUNTIME_API serves both):
# https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html ("Extensions API reference").
EXTENSION_API_PREFIX = "/2020-01-01/extension"
EXTENSION_REGISTER_PATH = f"{EXTENSION_API_PREFIX}/register"
EXTENSION_NEXT_PATH = f"{EXTENSION_API_PREFIX}/event/next"
EXTENSION_INIT_ERROR_PATH = f"{EXTENSION_API_PREFIX}/init/error"
EXTENSION_EXIT_ERROR_PATH = f"{EXTENSION_API_PREFIX}/exit/error"
EXTENSION_NAME_HEADER = "Lambda-Extension-Name"  # on register: the extension's file name
EXTENSION_ID_HEADER = "Lambda-Extension-Identifier"  # in register's response; on every later request
EXTENSION_EVENT_ID_HEADER = "Lambda-Extension-Event-Identifier"  # in event/next's response
EXTENSION_ERROR_TYPE_HEADER = "Lambda-Extension-Function-Error-Type"  # on init/error and exit/error
EXTENSION_EVENTS = ("INVOKE", "SHUTDOWN")  # what an external extension may register for
SHUTDOWN_REASONS = ("spindown", "timeout", "failure")
TRACING_TYPE = "X-Amzn-Trace-Id"  # an INVOKE event's tracing.type


def invocation_path(action: str, request_id: str | None = None) -> str:
    """`next`, or an invocation's `response` / `error` path."""
    if action == "next":
        return NEXT_PATH
    if action not in ("response", "error") or not request_id:
        raise ValueError(f"no Runtime API path for {action!r} (request id {request_id!r})")
    return f"{API_PREFIX}/invocation/{request_id}/{action}"


# Every header of the protocol, for the drift test: the bootstrap may use no other `Lambda-Runtime-*` name.
HEADERS = frozenset({REQUEST_ID_HEADER, DEADLINE_HEADER, TRACE_ID_HEADER, FUNCTION_ARN_HEADER, RESPONSE_MODE_HEADER,
                     ERROR_TYPE_HEADER, ERROR_BODY_TRAILER, XRAY_ERROR_CAUSE_HEADER})
# What `GET .../invocation/next` carries (RuntimeApi sends exactly these).
NEXT_HEADERS = frozenset({REQUEST_ID_HEADER, DEADLINE_HEADER, TRACE_ID_HEADER, FUNCTION_ARN_HEADER})
