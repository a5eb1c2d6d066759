"""Lambda's `Invoke` and `InvokeWithResponseStream` over HTTP, in front of `LambdaService`, as boto3 calls them.

Point a client at it with `AWS_ENDPOINT_URL_LAMBDA` (boto3's service-specific endpoint variable):
- `POST /2015-03-31/functions/{name}/invocations` (RequestResponse): the function's result as the
  body; a function error is `X-Amz-Function-Error: Unhandled` with Lambda's error JSON;
- `POST /2021-11-15/functions/{name}/response-streaming-invocations`: an
  `application/vnd.amazon.eventstream` body of `PayloadChunk` events (the raw stream the function
  wrote: for a Function URL response, its JSON prelude, eight NUL bytes and the body), then one
  `InvokeComplete` (with `ErrorCode` / `ErrorDetails` when the function failed)
  (https://docs.aws.amazon.com/lambda/latest/api/API_InvokeWithResponseStream.html).

The request's `X-Amzn-Trace-Id` is the upstream trace header, honoured as Lambda does for a function
with Active tracing. `{name}` may be a name or an ARN, with or without a qualifier.

The event-stream framing (AWS's binary event stream encoding: total length, headers length, prelude
CRC32, string headers `:event-type`, `:message-type`, `:content-type`, payload, message CRC32) is
what botocore's `botocore.eventstream` parser reads.

Example (not run: needs a running LambdaService):
    >>> api = LambdaInvokeApi(service).start()                               # doctest: +SKIP
    >>> os.environ["AWS_ENDPOINT_URL_LAMBDA"] = api.endpoint                  # doctest: +SKIP
"""

from __future__ import annotations

import binascii
import json
import re
import struct
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.lambda_.lambda_service import LambdaService
from devstack.lambda_.response_stream import FunctionError
from devstack.loopback import LoopbackServer
from lib.tracing.header import InvalidTraceHeaderError, TraceHeader

PRELUDE_DELIMITER = b"\x00" * 8
ROUTE = re.compile(r"^/(?P<version>2015-03-31|2021-11-15)/functions/(?P<name>[^/]+)/"
                   r"(?P<kind>invocations|response-streaming-invocations)$")


def function_key(name: str, project_prefix: str = "sentiment-analyzer-local-") -> str | None:
    """`sentiment-analyzer-local-dashboard`, its ARN or `...:function:<name>:<alias>` → `dashboard`."""
    base = name.split(":function:", 1)[-1].split(":", 1)[0]
    return base[len(project_prefix):] if base.startswith(project_prefix) else None


def event_message(event_type: str, payload: bytes, content_type: str = "application/octet-stream") -> bytes:
    """One event-stream message of type `event`."""
    headers = b"".join(
        struct.pack("!B", len(name)) + name + struct.pack("!BH", 7, len(value)) + value
        for name, value in ((b":event-type", event_type.encode()), (b":message-type", b"event"),
                            (b":content-type", content_type.encode())))
    total = 12 + len(headers) + len(payload) + 4
    prelude = struct.pack("!II", total, len(headers))
    prelude += struct.pack("!I", binascii.crc32(prelude))
    message = prelude + headers + payload
    return message + struct.pack("!I", binascii.crc32(message))


class LambdaInvokeApi:
    def __init__(self, service: LambdaService | None = None, host: str = "127.0.0.1", port: int = 0):
        self.service = service  # swappable: a test points one endpoint at a differently faulted stack
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                api._handle(self)

        self._server = LoopbackServer.http(host, port, Handler, name="lambda-invoke-api")

    @property
    def endpoint(self) -> str:
        return self._server.url

    def start(self) -> LambdaInvokeApi:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers.get("Content-Length") or 0))
        match = ROUTE.match(request.path.split("?", 1)[0])
        key = function_key(match["name"]) if match else None
        service = self.service
        if match is None or key is None or service is None or key not in service.available:
            return self._json(request, 404, {"Type": "User", "message": f"Function not found: {request.path}"},
                              {"x-amzn-ErrorType": "ResourceNotFoundException"})
        try:
            upstream = TraceHeader.parse(request.headers["X-Amzn-Trace-Id"]) \
                if request.headers.get("X-Amzn-Trace-Id") else None
        except InvalidTraceHeaderError:
            upstream = None  # Lambda starts a new trace for a header it cannot read
        event = json.loads(body or b"{}")
        if match["kind"] == "invocations":
            try:
                result, _ = service.invoke(key, event, upstream)
            except FunctionError as error:
                return self._json(request, 200, {"errorType": error.error_type, "errorMessage": error.message},
                                  {"X-Amz-Function-Error": "Unhandled"})
            return self._json(request, 200, result, {})
        call = service.stream(key, event, upstream)
        try:
            prelude = json.dumps({"statusCode": call.status, "headers": dict(call.headers), "cookies": []}).encode()
            messages = [event_message("PayloadChunk", prelude + PRELUDE_DELIMITER)]
            messages += [event_message("PayloadChunk", chunk) for chunk in call.chunks()]
            call.wait()
        finally:
            call.close()  # the relay is done: the service releases the environment and records the invocation
        failed = call.error
        complete: dict[str, str] = {} if failed is None else {"ErrorCode": failed.error_type,
                                                              "ErrorDetails": failed.message}
        messages.append(event_message("InvokeComplete", json.dumps(complete).encode(), "application/json"))
        payload = b"".join(messages)
        request.send_response(200)
        request.send_header("Content-Type", "application/vnd.amazon.eventstream")
        request.send_header("X-Amz-Executed-Version", "$LATEST")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    @staticmethod
    def _json(request: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("X-Amz-Executed-Version", "$LATEST")
        for name, value in headers.items():
            request.send_header(name, value)
        request.send_header("Content-Length", str(len(data)))
        request.end_headers()
        request.wfile.write(data)
