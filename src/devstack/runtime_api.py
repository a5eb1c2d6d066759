"""A local Lambda Runtime API: the service side of `bootstrap` / `awslambdaric`, streaming included.

One `RuntimeApi` is the Runtime API of one execution environment. The function's runtime polls
`GET /2018-06-01/runtime/invocation/next` and answers on `.../invocation/{id}/response` or
`.../invocation/{id}/error`; a runtime that cannot start reports `.../init/error`. Each
invocation carries the headers Lambda gives: `Lambda-Runtime-Aws-Request-Id`,
`Lambda-Runtime-Deadline-Ms`, `Lambda-Runtime-Trace-Id` (the facade's Root, Parent and sampling
decision: `devstack.lambda_service.Invocation` decides it and writes the `AWS::Lambda` /
`AWS::Lambda::Function` segments when the invocation ends) and
`Lambda-Runtime-Invoked-Function-Arn`.

Responses come buffered (`Content-Length`) or streamed (`Lambda-Runtime-Function-Response-Mode:
streaming`, chunked). A streamed `application/vnd.awslambda.http-integration-response` is a
JSON prelude (statusCode, headers, cookies), eight NUL bytes, then the body; an error after
the body began arrives in the trailers `Lambda-Runtime-Function-Error-Type` /
`Lambda-Runtime-Function-Error-Body` (base64 JSON).

The caller's side is `runtime.invoke(event, upstream) -> StreamingResponse`: it returns at once;
`prelude()` waits for status and headers, `chunks()` yields the body as the function writes it
(so a gateway relays it live), `close()` is the client going away: the function is not told (its
writes go on succeeding, what it writes is dropped) and it runs until it returns or times out.
The Runtime API and response streaming docs
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html) document no
signal to the function when its client leaves: undocumented, so the conservative reading.
Several runtime processes may poll one RuntimeApi (one execution environment each, one invocation
at a time: https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html).

Example:
    >>> with RuntimeApi(load_stack().function("sse_streaming"), daemon.address) as runtime:    # doctest: +SKIP
    ...     process = RuntimeProcess(runtime, [sys.executable, "docker/sse/bootstrap"], env).start()
    ...     call = runtime.invoke(function_url_event("GET", "/api/v2/stream"))
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
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO, Literal

from devstack.aws import REGION
from devstack.lambda_service import ACCOUNT_ID, Invocation, SamplingRule
from devstack.stack import SRC_ROOT, FunctionSpec
from lib.tracing.bounds import truncate_message
from lib.tracing.header import TraceHeader

log = logging.getLogger("devstack.runtime_api")

API_PREFIX = "/2018-06-01/runtime"
HTTP_INTEGRATION = "application/vnd.awslambda.http-integration-response"
PRELUDE_DELIMITER = b"\x00" * 8
RESPONSE_MODE_HEADER = "Lambda-Runtime-Function-Response-Mode"
ERROR_TYPE_HEADER = "Lambda-Runtime-Function-Error-Type"
ERROR_BODY_TRAILER = "Lambda-Runtime-Function-Error-Body"
MAX_BUFFERED_BYTES = 6 * 1024 * 1024  # Lambda's synchronous payload limit
MAX_STREAMED_BYTES = 20 * 1024 * 1024  # Lambda's (default) streamed response limit
MAX_LINE_BYTES = 64 * 1024
TIMEOUT_GRACE_S = 0.5  # how late past its deadline an invocation is declared timed out

Mode = Literal["buffered", "streaming"]


class FunctionError(Exception):
    """The function failed an invocation (what Lambda reports as `X-Amz-Function-Error`)."""

    def __init__(self, function: str, error_type: str, message: str, invocation: Invocation | None,
                 body: Mapping[str, Any] | None = None):
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message
        self.invocation = invocation
        self.body = dict(body or {})


class ResponseNotReadyError(TimeoutError):
    """The function has not answered (yet) within the time the caller would wait."""


class ProtocolError(ValueError):
    """The runtime broke the Runtime API protocol (bad chunking, bad prelude, bad JSON)."""


def function_url_event(
    method: str, path: str, headers: Mapping[str, str] | None = None, query: str = "",
    body: str | None = None, source_ip: str = "127.0.0.1", url_id: str = "localfunctionurl",
) -> dict[str, Any]:
    """A Lambda Function URL event (payload format 2.0), as the URL gives it to the function.

    Example:
        >>> function_url_event("GET", "/api/v2/stream")["requestContext"]["http"]["method"]
        'GET'
    """
    now = time.time()
    lowered = {key.lower(): value for key, value in (headers or {}).items()}
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query, "headers": lowered,
        "requestContext": {
            "accountId": "anonymous", "apiId": url_id, "domainName": f"{url_id}.lambda-url.{REGION}.on.aws",
            "domainPrefix": url_id, "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": lowered.get("user-agent", "")},
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    return event


_ERROR_CLASSES: dict[str, type[Exception]] = {}


def _as_exception(error: FunctionError) -> Exception:
    """An exception named like the function's error type, for the facade's `cause` (Invocation.finish)."""
    kind = _ERROR_CLASSES.setdefault(error.error_type, type(error.error_type, (Exception,), {}))
    return kind(error.message)


class StreamingResponse:
    """The caller's side of one invocation: the function's response as it arrives.

    The raw bytes are kept for the invocation's life (bounded by the function's timeout and
    MAX_STREAMED_BYTES), so the body and the raw stream can both be read.
    """

    def __init__(self, runtime: RuntimeApi, invocation: Invocation, event: bytes):
        self._runtime = runtime
        self.invocation = invocation
        self.event = event
        self._cv = threading.Condition()
        self._raw: list[bytes] = []
        self._size = 0
        self.chunk_times: list[float] = []  # time.monotonic() of each chunk's arrival
        self.mode: Mode | None = None
        self.content_type: str | None = None
        self.error: FunctionError | None = None
        self.completed = False
        self.completed_at: float | None = None
        self.disconnected = False
        self.delivered_at: float | None = None  # when a runtime took it from /next
        self._connection: socket.socket | None = None
        self._prelude: tuple[int, list[tuple[str, str]]] | None = None
        self._prelude_json: dict[str, Any] | None = None
        self._body_offset: tuple[int, int] | None = None  # (chunk index, byte offset) where the body starts
        self._buffered_body = b""

    # -- the runtime's side (server threads) -------------------------------------------------------
    def _begin(self, mode: Mode, content_type: str | None, connection: socket.socket | None) -> None:
        with self._cv:
            self.mode, self.content_type, self._connection = mode, content_type, connection
            if mode == "streaming" and content_type != HTTP_INTEGRATION:  # a plain stream: all body
                self._prelude = (200, [("content-type", content_type or "application/octet-stream")])
                self._body_offset = (0, 0)
            self._cv.notify_all()

    def _feed(self, data: bytes) -> None:
        with self._cv:
            self._raw.append(data)
            self._size += len(data)
            self.chunk_times.append(time.monotonic())
            if self.mode == "streaming" and self.content_type == HTTP_INTEGRATION and self._prelude is None:
                self._find_prelude()
            self._cv.notify_all()

    def _finish(self, error: FunctionError | None) -> bool:
        """End the invocation once; False when it had already ended (e.g. timed out before)."""
        with self._cv:
            if self.completed:
                return False
            self.completed, self.completed_at, self._connection = True, time.monotonic(), None
            self.error = error
            self._runtime._count_end(error)
            if error is None and self.mode == "buffered":
                self._prelude_from_buffered_response()
            self._cv.notify_all()
        self.invocation.finish(None if error is None else _as_exception(error), status=200)
        return True

    def _find_prelude(self) -> None:
        joined = b"".join(self._raw)
        at = joined.find(PRELUDE_DELIMITER)
        if at < 0:
            return
        try:
            prelude = json.loads(joined[:at])
        except ValueError as error:
            raise ProtocolError("the streamed response's prelude is not JSON") from error
        self._prelude_json = prelude if isinstance(prelude, dict) else None
        self._prelude = _http_prelude(prelude)
        offset, index = at + len(PRELUDE_DELIMITER), 0
        while index < len(self._raw) and offset >= len(self._raw[index]):
            offset -= len(self._raw[index])
            index += 1
        self._body_offset = (index, offset)

    def _prelude_from_buffered_response(self) -> None:
        """The Function URL's view of a buffered payload: a `{statusCode, headers, body}` result, or JSON."""
        payload = b"".join(self._raw)
        try:
            result = json.loads(payload) if payload else None
        except ValueError:
            result = None
        if isinstance(result, dict) and isinstance(result.get("statusCode"), int):
            self._prelude_json = result
            self._prelude = _http_prelude(result)
            body = result.get("body") or ""
            raw_body = base64.b64decode(body) if result.get("isBase64Encoded") else str(body).encode()
        else:
            self._prelude = (200, [("content-type", "application/json")])
            raw_body = payload
        self._buffered_body = raw_body

    # -- the caller's side -------------------------------------------------------------------------
    def _deadline(self, timeout_s: float | None) -> float:
        if timeout_s is not None:
            return time.monotonic() + timeout_s
        remaining = self.invocation.deadline_ms / 1000 - time.time()
        return time.monotonic() + max(0.0, remaining) + TIMEOUT_GRACE_S + 1.0

    def wait(self, timeout_s: float | None = None) -> bool:
        """True once the invocation ended (response complete, error, timeout or disconnect)."""
        end = self._deadline(timeout_s)
        with self._cv:
            while not self.completed:
                if not self._cv.wait(max(0.0, end - time.monotonic())) and time.monotonic() >= end:
                    return False
            return True

    def prelude(self, timeout_s: float | None = None) -> tuple[int, list[tuple[str, str]]]:
        """Status and headers as the Function URL answers them; a failed invocation is a 502."""
        end = self._deadline(timeout_s)
        with self._cv:
            while self._prelude is None and not self.completed:
                if not self._cv.wait(max(0.0, end - time.monotonic())) and time.monotonic() >= end:
                    raise ResponseNotReadyError("the function sent no response prelude in time")
            if self._prelude is not None:
                return self._prelude[0], list(self._prelude[1])
        if self.error is not None:
            return 502, [("content-type", "application/json"), ("x-amzn-errortype", self.error.error_type)]
        return 502, [("content-type", "application/json")]

    def prelude_json(self, timeout_s: float | None = None) -> dict[str, Any] | None:
        """The prelude exactly as the function sent it (None before it arrived or when there is none)."""
        self.prelude(timeout_s)
        return self._prelude_json

    def raw_chunks(self) -> Iterator[bytes]:
        """Every chunk exactly as the runtime wrote it (prelude and delimiter included), as it arrives."""
        index = 0
        while (chunk := self._raw_chunk(index)) is not None:
            index += 1
            yield chunk

    def _raw_chunk(self, index: int) -> bytes | None:
        """Raw chunk `index` once it has arrived; None when the stream ended before it."""
        with self._cv:
            while index >= len(self._raw) and not self.completed:
                self._cv.wait(0.5)
            return self._raw[index] if index < len(self._raw) else None

    def chunks(self) -> Iterator[bytes]:
        """The response body as the function writes it (after the prelude), then the end of the stream."""
        self.prelude()
        if self.mode == "buffered" and self.error is None:
            if self._buffered_body:
                yield self._buffered_body
            return
        if self._body_offset is None:  # a failed invocation: the Function URL's error body
            if self.error is not None:
                yield json.dumps({"errorType": self.error.error_type, "errorMessage": self.error.message}).encode()
            return
        index, offset = self._body_offset
        while (raw := self._raw_chunk(index)) is not None:
            chunk = raw[offset:]
            index, offset = index + 1, 0
            if chunk:
                yield chunk

    def payload(self, timeout_s: float | None = None) -> bytes:
        """Everything the function wrote, once the invocation ended."""
        if not self.wait(timeout_s):
            raise ResponseNotReadyError("the invocation did not end in time")
        return b"".join(self._raw)

    def result(self, timeout_s: float | None = None) -> Any:
        """A buffered invocation's JSON result; FunctionError when the function failed."""
        payload = self.payload(timeout_s)
        if self.error is not None:
            raise self.error
        return json.loads(payload) if payload else None

    def close(self) -> str | None:
        """The caller is done (or its client went away). The function is not told: it streams on
        until it returns or times out, as Lambda lets it. Returns the function's error type, if the
        invocation failed."""
        with self._cv:
            if not self.completed:
                self.disconnected = True
            self._cv.notify_all()
        return None if self.error is None else self.error.error_type


def _http_prelude(prelude: Any) -> tuple[int, list[tuple[str, str]]]:
    if not isinstance(prelude, dict) or not isinstance(prelude.get("statusCode", 200), int):
        raise ProtocolError("the response prelude must be an object with an integer statusCode")
    headers = prelude.get("headers") or {}
    cookies = prelude.get("cookies") or []
    if not isinstance(headers, dict) or not isinstance(cookies, list):
        raise ProtocolError("prelude headers must be an object and cookies a list")
    pairs = [(str(key), str(value)) for key, value in headers.items()]
    pairs += [("set-cookie", str(cookie)) for cookie in cookies]
    return int(prelude.get("statusCode", 200)), pairs


def _reset(connection: socket.socket) -> None:
    """Cut a connection the way a vanished client does: RST, so the writer's next send fails."""
    try:
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by its handler: nothing left to cut


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


class RuntimeApi:
    """The Runtime API of one execution environment (start it before the runtime process)."""

    def __init__(self, function: FunctionSpec, daemon_address: str, sampling_rule: SamplingRule | None = None,
                 host: str = "127.0.0.1", port: int = 0):
        self.function = function
        self.daemon_address = daemon_address
        self.sampling_rule = sampling_rule
        self.stats = RuntimeStats()
        self.init_error: FunctionError | None = None
        self._queue: queue.Queue[StreamingResponse] = queue.Queue()
        self._calls: dict[str, StreamingResponse] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        runtime = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                log.debug(format, *args)

            def do_GET(self) -> None:
                runtime._route(self, "GET")

            def do_POST(self) -> None:
                runtime._route(self, "POST")

        self._server = _QuietServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="runtime-api", daemon=True)
        self._watchdog = threading.Thread(target=self._watch_deadlines, name="runtime-api-deadlines", daemon=True)

    @property
    def address(self) -> str:
        """`AWS_LAMBDA_RUNTIME_API` for the runtime process (host:port)."""
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> RuntimeApi:
        self._thread.start()
        self._watchdog.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            pending = [call for call in self._calls.values() if not call.completed]
        for call in pending:
            call._finish(FunctionError(self.function.name, "Runtime.Stopped", "the runtime was stopped", None))

    def __enter__(self) -> RuntimeApi:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def invoke(self, event: Any, upstream: TraceHeader | None = None, upstream_segment_written: bool = False,
               timeout_s: float | None = None) -> StreamingResponse:
        """Queue one invocation and return its response handle at once.

        `timeout_s` overrides the function's timeout for this invocation (short deadlines in tests).
        """
        invocation = Invocation(self.function, self.daemon_address, upstream, upstream_segment_written,
                                self.sampling_rule)
        if timeout_s is not None:
            invocation.deadline_ms = int((invocation.start_time + timeout_s) * 1000)
        call = StreamingResponse(self, invocation, json.dumps(event).encode())
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
    def _route(self, request: BaseHTTPRequestHandler, method: str) -> None:
        path = request.path.split("?", 1)[0]
        if not path.startswith(API_PREFIX + "/"):
            self._reply(request, 404, {"errorType": "NotFound", "errorMessage": f"unknown path {path[:100]}"})
            return
        parts = path[len(API_PREFIX) + 1:].split("/")
        if method == "GET" and parts == ["invocation", "next"]:
            self._next(request)
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
        elif method == "POST" and parts == ["init", "error"]:
            self._init_error(request)
        else:
            self._reply(request, 404, {"errorType": "NotFound", "errorMessage": f"unknown path {path[:100]}"})

    def _reply(self, request: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any] | None = None,
               headers: Mapping[str, str] | None = None, raw: bytes | None = None) -> None:
        payload = raw if raw is not None else json.dumps(body or {"status": "OK"}).encode()
        request.send_response(status)
        for key, value in (headers or {}).items():
            request.send_header(key, value)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _next(self, request: BaseHTTPRequestHandler) -> None:
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
            self._reply(request, 200, raw=call.event, headers={
                "Lambda-Runtime-Aws-Request-Id": invocation.request_id,
                "Lambda-Runtime-Deadline-Ms": str(invocation.deadline_ms),
                "Lambda-Runtime-Trace-Id": invocation.trace_header.format(),
                "Lambda-Runtime-Invoked-Function-Arn":
                    f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function.name}",
            })
            return
        request.close_connection = True

    def _response(self, request: BaseHTTPRequestHandler, call: StreamingResponse) -> None:
        streaming = request.headers.get(RESPONSE_MODE_HEADER, "").lower() == "streaming"
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

    def _trailer_error(self, call: StreamingResponse, trailers: Mapping[str, str]) -> FunctionError | None:
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

    def _error(self, request: BaseHTTPRequestHandler, call: StreamingResponse) -> None:
        body = self._json_body(request)
        error_type = request.headers.get(ERROR_TYPE_HEADER) or str(body.get("errorType", "Unhandled"))
        self._reply(request, 202)
        self._end(call, FunctionError(self.function.name, error_type,
                                      truncate_message(str(body.get("errorMessage", ""))), call.invocation, body))

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

    def _protocol_error(self, request: BaseHTTPRequestHandler, call: StreamingResponse, message: str) -> None:
        self.stats.protocol_errors += 1
        log.warning("runtime protocol error: %s", message)
        self._reply(request, 400, {"errorType": "InvalidRuntimeResponse", "errorMessage": message})
        request.close_connection = True
        self._end(call, FunctionError(self.function.name, "Runtime.InvalidResponse", message, call.invocation))

    def _cut(self, request: BaseHTTPRequestHandler, call: StreamingResponse) -> None:
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

    def _end(self, call: StreamingResponse, error: FunctionError | None) -> None:
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


class RuntimeProcess:
    """A runtime (`bootstrap`, `python -m awslambdaric ...`) as a child process of this one.

    Its output is kept (the last lines) for diagnostics; `stop()` ends exactly this process.
    """

    def __init__(self, runtime: RuntimeApi, command: Sequence[str], environment: Mapping[str, str],
                 cwd: Path = SRC_ROOT, keep_lines: int = 500):
        self.runtime = runtime
        self.command = list(command)
        self.environment = {**environment, "AWS_LAMBDA_RUNTIME_API": runtime.address}
        self.cwd = cwd
        self.output: deque[str] = deque(maxlen=keep_lines)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self) -> RuntimeProcess:
        self._process = subprocess.Popen(
            self.command, env=dict(self.environment), cwd=str(self.cwd), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        self._reader = threading.Thread(target=self._read, name="runtime-process-output", daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self._process is not None and self._process.stdout is not None
        for line in self._process.stdout:
            self.output.append(line.decode("utf-8", errors="replace").rstrip())

    def exit_code(self, timeout_s: float = 0.0) -> int | None:
        """The exit code once the process ended (waiting up to `timeout_s`), else None."""
        if self._process is None:
            return None
        try:
            return self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout_s: float = 5.0) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._reader is not None:
            self._reader.join(timeout_s)
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> RuntimeProcess:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()
