"""A local Lambda Runtime API: the service side of `bootstrap` / `awslambdaric`, streaming included.

One `RuntimeApi` is the Runtime API of one execution environment. The function's runtime polls
`GET /2018-06-01/runtime/invocation/next` and answers on `.../invocation/{id}/response` or
`.../invocation/{id}/error`; a runtime that cannot start reports `.../init/error`. Each
invocation carries the headers Lambda gives: `Lambda-Runtime-Aws-Request-Id`,
`Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Trace-Id` (the facade's Root, Parent and sampling
decision: `devstack.lambda_.invocation.Invocation` decides it and writes the `AWS::Lambda` /
`AWS::Lambda::Function` segments when the invocation ends) and
`Lambda-Runtime-Invoked-Function-Arn`.

Responses come buffered (`Content-Length`) or streamed (`Lambda-Runtime-Function-Response-Mode:
streaming`, chunked). A streamed `application/vnd.awslambda.http-integration-response` is a
JSON prelude (statusCode, headers, cookies), eight NUL bytes, then the body; an error after
the body began arrives in the trailers `Lambda-Runtime-Function-Error-Type` /
`Lambda-Runtime-Function-Error-Body` (base64 JSON).

The caller's side is `runtime.invoke(event, upstream) -> ResponseStream` (`response_stream`); the
wire literals are in `wire`, the runtime process in `process`. `close()` on a stream is the client
going away: the function is not told (its writes go on succeeding) and it runs until it returns or
times out. Several runtime processes may poll one RuntimeApi (one execution environment each, one
invocation at a time: https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).

The same endpoint serves the Extensions API (`extensions_api`), as `AWS_LAMBDA_RUNTIME_API` does in
Lambda. An environment that runs extensions (`container.ContainerRuntime`) gets an endpoint of its own
(`open_environment`): same invocation queue, its own Extensions API, so INVOKE and SHUTDOWN reach
the extensions of the environment whose runtime took the invocation, and no other.

Example (not run: starts a runtime process):
    >>> with RuntimeApi(load_stack().function("sse_streaming"), daemon.address) as runtime:    # doctest: +SKIP
    ...     process = RuntimeProcess(runtime, [sys.executable, "docker/sse/bootstrap"], env).start()
    ...     call = runtime.invoke(function_url_event("GET", "/api/v2/stream"))   # lambda_.events
    ...     status, headers = call.prelude()
    ...     for chunk in call.chunks(): ...
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import logging
import queue
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, BinaryIO

from devstack.aws.moto_server import REGION
from devstack.lambda_.extensions_api import ExtensionsApi
from devstack.lambda_.invocation import ACCOUNT_ID, Invocation, SamplingRule, xray_cause
from devstack.lambda_.response_stream import (
    TIMEOUT_GRACE_S,
    FunctionError,
    ProtocolError,
    ResponseStream,
    _reset,
)
from devstack.lambda_.wire import (
    API_PREFIX,
    DEADLINE_HEADER,
    ERROR_BODY_TRAILER,
    ERROR_TYPE_HEADER,
    FUNCTION_ARN_HEADER,
    INIT_ERROR_PATH,
    NEXT_PATH,
    REQUEST_ID_HEADER,
    RESPONSE_MODE_HEADER,
    STREAMING_MODE,
    TRACE_ID_HEADER,
    XRAY_ERROR_CAUSE_HEADER,
)
from devstack.loopback import LoopbackServer, send_reply
from devstack.stack import FunctionSpec
from lib.tracing.bounds import truncate_message
from lib.tracing.header import TraceHeader

log = logging.getLogger("devstack.lambda_.runtime_api")

MAX_BUFFERED_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
MAX_STREAMED_BYTES = 20 * 1024 * 1024  # Lambda's (default) streamed response limit
MAX_LINE_BYTES = 64 * 1024


def _read_chunked(stream: BinaryIO, on_chunk: Any, limit: int) -> dict[str, str]:
    """Read a chunked body, handing each chunk on; return the trailers. ProtocolError on bad framing,
    ConnectionError when the connection ends early."""
    total = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            raise ConnectionAbortedError("connection closed inside a chunked body")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as error:
            raise ProtocolError(f"bad chunk size line {line[:40]!r}") from error
        if size == 0:
            break
        total += size
        if total > limit:
            raise ProtocolError(f"streamed response over {limit} bytes")
        data = stream.read(size)
        if len(data) < size:
            raise ConnectionAbortedError("connection closed inside a chunk")
        if stream.read(2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")
        on_chunk(data)
    trailers: dict[str, str] = {}
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            raise ConnectionAbortedError("connection closed inside the trailers")
        if line in (b"\r\n", b"\n"):
            return trailers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise ProtocolError(f"bad trailer line {line[:40]!r}")
        trailers[name.strip().lower()] = value.strip()


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True
    # Every worker of a multi-concurrency runtime connects at once; socketserver's default backlog
    # of 5 drops the rest's SYNs, and their retransmits cost seconds.
    request_queue_size = 1024

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A connection cut on purpose (a vanished client, a timeout) fails its handler's last flush.
        log.debug("runtime API connection from %s ended with an error", client_address, exc_info=True)


@dataclasses.dataclass
class RuntimeStats:
    invocations: int = 0
    responses: int = 0
    errors: int = 0
    timeouts: int = 0
    disconnects: int = 0
    protocol_errors: int = 0
    # monotonic: the runtime's first GET /next, its init done (Lambda's Init phase ends when the runtime
    # and every extension have asked for their next event: lambda-runtime-environment.html)
    first_next_at: float | None = None


class EnvironmentEndpoint:
    """One execution environment's own address on a RuntimeApi: the shared invocation queue, its own
    Extensions API. `AWS_LAMBDA_RUNTIME_API` for that environment is `address`."""

    def __init__(self, server: LoopbackServer, extensions: ExtensionsApi):
        self.server = server
        self.extensions = extensions

    @property
    def address(self) -> str:
        return self.server.address


class RuntimeApi:
    """The Runtime API of one execution environment (start it before the runtime process)."""

    def __init__(self, function: FunctionSpec, daemon_address: str, sampling_rule: SamplingRule | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.function = function
        self.daemon_address = daemon_address
        self.sampling_rule = sampling_rule
        self.stats = RuntimeStats()
        self.init_error: FunctionError | None = None
        self._queue: queue.Queue[ResponseStream] = queue.Queue()
        self._calls: dict[str, ResponseStream] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._host = host
        self.extensions = ExtensionsApi(function.name, function.handler)
        self._environments: list[EnvironmentEndpoint] = []
        self._server = LoopbackServer.http(host, port, self._handler(self.extensions), name="runtime-api",
                                           server_class=_QuietServer)
        self._watchdog = threading.Thread(target=self._watch_deadlines, name="runtime-api-deadlines", daemon=True)

    def _handler(self, extensions: ExtensionsApi) -> type[BaseHTTPRequestHandler]:
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

            def do_GET(self) -> None:
                runtime._route(self, "GET", extensions)

            def do_POST(self) -> None:
                runtime._route(self, "POST", extensions)

        return Handler

    @property
    def address(self) -> str:
        """`AWS_LAMBDA_RUNTIME_API` for the runtime process (host:port)."""
        return self._server.address

    def open_environment(self) -> EnvironmentEndpoint:
        """A started endpoint of its own for one execution environment (close it with `close_environment`)."""
        extensions = ExtensionsApi(self.function.name, self.function.handler)
        server = LoopbackServer.http(self._host, 0, self._handler(extensions), name="runtime-api-environment",
                                     server_class=_QuietServer)
        endpoint = EnvironmentEndpoint(server, extensions)
        with self._lock:
            self._environments.append(endpoint)
        server.start()
        return endpoint

    def close_environment(self, endpoint: EnvironmentEndpoint) -> None:
        endpoint.extensions.stop()
        endpoint.server.stop()
        with self._lock:
            if endpoint in self._environments:
                self._environments.remove(endpoint)

    def start(self) -> RuntimeApi:
        self._server.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self.extensions.stop()
        with self._lock:
            environments = list(self._environments)
        for endpoint in environments:
            self.close_environment(endpoint)
        self._server.stop()
        with self._lock:
            pending = [call for call in self._calls.values() if not call.completed]
        for call in pending:
            call._finish(FunctionError(self.function.name, "Runtime.Stopped", "the runtime was stopped", None))

    def __enter__(self) -> RuntimeApi:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def invoke(self, event: Any, upstream: TraceHeader | None = None, upstream_segment_written: bool = False,
               timeout_s: float | None = None) -> ResponseStream:
        """Queue one invocation and return its response handle at once.

        `timeout_s` overrides the function's timeout for this invocation (short deadlines in tests).
        """
        invocation = Invocation(self.function, self.daemon_address, upstream, upstream_segment_written,
                                self.sampling_rule)
        if timeout_s is not None:
            invocation.deadline_ms = int((invocation.start_time + timeout_s) * 1000)
        call = ResponseStream(self, invocation, json.dumps(event).encode())
        with self._lock:
            self._calls[invocation.request_id] = call
            self.stats.invocations += 1
            # Checked under the lock `stop` takes after setting it: a call queued during the stop
            # is either in its list or refused here, never left waiting for the function's timeout.
            stopped = self._stopping.is_set()
        if stopped:
            call._finish(FunctionError(self.function.name, "Runtime.Stopped", "the runtime was stopped", None))
        elif self.init_error is not None:
            call._finish(FunctionError(self.function.name, "Runtime.InitError", self.init_error.message, invocation))
        else:
            self._queue.put(call)
        return call

    # -- HTTP --------------------------------------------------------------------------------------
    def _route(self, request: BaseHTTPRequestHandler, method: str, extensions: ExtensionsApi) -> None:
        path = request.path.split("?", 1)[0]
        if extensions.handles(path):
            extensions.route(request, method, path)
            return
        if not path.startswith(API_PREFIX + "/"):
            self._reply(request, 404, {"errorType": "NotFound", "errorMessage": f"unknown path {path[:100]}"})
            return
        parts = path[len(API_PREFIX) + 1:].split("/")
        if method == "GET" and path == NEXT_PATH:
            with self._lock:
                self.stats.first_next_at = self.stats.first_next_at or time.monotonic()
            self._next(request, extensions)
        elif method == "POST" and len(parts) == 3 and parts[0] == "invocation" and parts[2] in ("response", "error"):
            call = self._calls.get(parts[1])
            if call is None or call.delivered_at is None:
                self._reply(request, 400, {"errorType": "InvalidRequestID",
                                           "errorMessage": "no invocation in flight with this request id"})
                request.close_connection = True
            elif call.mode is not None or call.completed:
                self._reply(request, 400, {"errorType": "InvalidStateTransition",
                                           "errorMessage": "this invocation was answered already"})
                request.close_connection = True
            elif parts[2] == "response":
                self._response(request, call)
            else:
                self._error(request, call)
        elif method == "POST" and path == INIT_ERROR_PATH:
            self._init_error(request)
        else:
            self._reply(request, 404, {"errorType": "NotFound", "errorMessage": f"unknown path {path[:100]}"})

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any] | None = None,
               headers: Mapping[str, str] | None = None, raw: bytes | None = None) -> None:
        payload = raw if raw is not None else json.dumps(body or {"status": "OK"}).encode()
        send_reply(request, status, payload, headers=headers)

    def _next(self, request: BaseHTTPRequestHandler, extensions: ExtensionsApi) -> None:
        while not self._stopping.is_set():
            try:
                call = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if call.completed:  # timed out while queued
                continue
            if call.disconnected:  # the caller left while it was queued
                self.stats.disconnects += 1
                self._end(call, None)
                continue
            invocation = call.invocation
            call.delivered_at = time.monotonic()
            function_arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function.name}"
            # The environment's extensions registered for INVOKE get the invocation as its runtime does.
            extensions.invoke(invocation.request_id, invocation.deadline_ms, function_arn,
                              invocation.trace_header.format())
            self._reply(request, 200, raw=call.event, headers={
                REQUEST_ID_HEADER: invocation.request_id,
                DEADLINE_HEADER: str(invocation.deadline_ms),
                TRACE_ID_HEADER: invocation.trace_header.format(),
                FUNCTION_ARN_HEADER: function_arn,
            })
            return
        request.close_connection = True

    def _response(self, request: BaseHTTPRequestHandler, call: ResponseStream) -> None:
        streaming = request.headers.get(RESPONSE_MODE_HEADER, "").lower() == STREAMING_MODE
        content_type = request.headers.get("Content-Type")
        if streaming:
            if "chunked" not in request.headers.get("Transfer-Encoding", "").lower():
                self._protocol_error(request, call, "a streamed response must be chunked")
                return
            call._begin("streaming", content_type, request.connection)
            try:
                trailers = _read_chunked(request.rfile, call._feed, MAX_STREAMED_BYTES)  # type: ignore[arg-type]
            except ProtocolError as error:
                self._protocol_error(request, call, str(error))
                return
            except (ConnectionError, OSError):
                self._cut(request, call)
                return
            failure = self._trailer_error(call, trailers)
            self._reply(request, 202)
            self._end(call, failure)
            return
        try:
            length = int(request.headers.get("Content-Length", ""))
        except ValueError:
            self._protocol_error(request, call, "a buffered response needs Content-Length")
            return
        if length > MAX_BUFFERED_BYTES:
            self._reply(request, 413, {"errorType": "RequestEntityTooLarge",
                                       "errorMessage": f"response of {length} bytes over {MAX_BUFFERED_BYTES}"})
            request.close_connection = True
            self._end(call, FunctionError(self.function.name, "Function.ResponseSizeTooLarge",
                                          f"response of {length} bytes", call.invocation))
            return
        call._begin("buffered", content_type, None)
        call._feed(request.rfile.read(length))
        self._reply(request, 202)
        self._end(call, None)

    def _trailer_error(self, call: ResponseStream, trailers: Mapping[str, str]) -> FunctionError | None:
        error_type = trailers.get(ERROR_TYPE_HEADER.lower())
        if error_type is None:
            return None
        body: dict[str, Any] = {}
        raw = trailers.get(ERROR_BODY_TRAILER.lower(), "")
        try:
            decoded = json.loads(base64.b64decode(raw, validate=True)) if raw else {}
            body = decoded if isinstance(decoded, dict) else {}
        except (ValueError, binascii.Error):
            body = {"errorMessage": "(undecodable error body)"}
        return FunctionError(self.function.name, error_type, truncate_message(str(body.get("errorMessage", ""))),
                             call.invocation, body)

    def _error(self, request: BaseHTTPRequestHandler, call: ResponseStream) -> None:
        body = self._json_body(request)
        error_type = request.headers.get(ERROR_TYPE_HEADER) or str(body.get("errorType", "Unhandled"))
        self._reply(request, 202)
        self._end(call, FunctionError(self.function.name, error_type,
                                      truncate_message(str(body.get("errorMessage", ""))), call.invocation, body,
                                      xray_cause(request.headers.get(XRAY_ERROR_CAUSE_HEADER))))

    def _init_error(self, request: BaseHTTPRequestHandler) -> None:
        body = self._json_body(request)
        error_type = request.headers.get(ERROR_TYPE_HEADER) or str(body.get("errorType", "Runtime.Unknown"))
        self.init_error = FunctionError(self.function.name, error_type,
                                        truncate_message(str(body.get("errorMessage", ""))), None, body)
        self._reply(request, 202)
        with self._lock:
            pending = [call for call in self._calls.values() if not call.completed]
        for call in pending:
            self._end(call, FunctionError(self.function.name, "Runtime.InitError",
                                          self.init_error.message, call.invocation, body))

    def _json_body(self, request: BaseHTTPRequestHandler) -> dict[str, Any]:
        try:
            length = min(int(request.headers.get("Content-Length", "0")), MAX_BUFFERED_BYTES)
        except ValueError:
            length = 0
        try:
            body = json.loads(request.rfile.read(length) or b"{}")
        except ValueError:
            return {"errorMessage": "(error body is not JSON)"}
        return body if isinstance(body, dict) else {}

    def _protocol_error(self, request: BaseHTTPRequestHandler, call: ResponseStream, message: str) -> None:
        self.stats.protocol_errors += 1
        log.warning("runtime protocol error: %s", message)
        self._reply(request, 400, {"errorType": "InvalidRuntimeResponse", "errorMessage": message})
        request.close_connection = True
        self._end(call, FunctionError(self.function.name, "Runtime.InvalidResponse", message, call.invocation))

    def _cut(self, request: BaseHTTPRequestHandler, call: ResponseStream) -> None:
        """The runtime's response connection ended early: the runtime vanished (a client never causes it)."""
        request.close_connection = True
        _reset(request.connection)
        self._end(call, FunctionError(self.function.name, "Runtime.ExitError",
                                      "the runtime's response connection ended early", call.invocation))

    def _count_end(self, error: FunctionError | None) -> None:
        """Called by an invocation as it ends, before its caller is woken."""
        with self._lock:
            if error is None:
                self.stats.responses += 1
            elif error.error_type == "Sandbox.Timedout":
                self.stats.timeouts += 1
            else:
                self.stats.errors += 1

    def _end(self, call: ResponseStream, error: FunctionError | None) -> None:
        call._finish(error)
        with self._lock:
            self._calls.pop(call.invocation.request_id, None)

    def _watch_deadlines(self) -> None:
        """Lambda stops an invocation at its deadline: the caller gets `Sandbox.Timedout`."""
        while not self._stopping.wait(0.05):
            now_ms = time.time() * 1000
            with self._lock:
                late = [call for call in self._calls.values()
                        if not call.completed and now_ms > call.invocation.deadline_ms + TIMEOUT_GRACE_S * 1000]
            for call in late:
                with self._lock:
                    self._calls.pop(call.invocation.request_id, None)
                connection = call._connection
                call._finish(FunctionError(self.function.name, "Sandbox.Timedout", "Task timed out", call.invocation))
                if connection is not None:
                    _reset(connection)


