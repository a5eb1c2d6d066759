"""The local edge: one HTTP server (127.0.0.1:8000 by default) in front of the stack, as CloudFront is.

- `/api/v2/stream`, `/api/v2/stream/...` and `/api/v2/configurations/{id}/stream`: the SSE
  function's Function URL (RESPONSE_STREAM). The response is relayed chunk by chunk as the function
  writes it; CORS is the Function URL's configuration.
- every other `/api/v2/...`: API Gateway (REST) → the dashboard function.
- `/config.json` and `/devstack/traces/<id>`: the dashboard's local trace links (`trace_view.py`).
- everything else: the built frontend (`frontend/dist`), same origin as the API.

What CloudFront does before an origin sees a request, in its order:

1. **Allowed methods** per cache behaviour (`modules/edge/cloudfront.tf`: GET/HEAD/OPTIONS on the
   stream paths and the default behaviour, all seven methods on `/api/v2/*`): any other method
   (TRACE, CONNECT, an unknown one) is answered 403 by CloudFront itself:
   https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-403-invalid-method.html
2. **The viewer-request CloudFront Function** on both API routes: the real `strip_sampling.js`, run
   by node (`cloudfront_function`): the client's `Sampled` is removed (FR-035), everything else of
   the header passes unchanged. A malformed `X-Amzn-Trace-Id` passes too: the origin ignores a
   header it cannot read and starts a new trace, so the edge never answers 400 for it.
3. **Origin access** (`origin_access`): the API origin gets the origin-verify header, the Function
   URL a SigV4 signature (origin access control), so neither answers a request that went around
   the edge.

Example (not run: binds a port and needs the stack's backends):
    >>> gateway = CloudFrontEdge(api_backend, stream_backend, Path("frontend/dist")).start()  # doctest: +SKIP
    >>> gateway.url                                                                   # doctest: +SKIP
    'http://127.0.0.1:8000'
"""

from __future__ import annotations

import json
import mimetypes
import re
import select
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from devstack.console import Console
from devstack.edge.cloudfront_function import CloudFrontFunction, CloudFrontFunctionError
from devstack.edge.origin_access import OriginAccess
from devstack.loopback import LoopbackServer
from devstack.xray.trace_view import LocalTraceViews
from lib.tracing.header import InvalidTraceHeaderError, TraceHeader

TRACE_HEADER = "X-Amzn-Trace-Id"
MAX_BODY_BYTES = 10 * 1024 * 1024  # API Gateway's payload limit
STREAM_PATH = re.compile(r"^/api/v2/(stream(/.*)?|configurations/[^/]+/stream)$")
# `allowed_methods` of the distribution's cache behaviours (modules/edge/cloudfront.tf; tests/contract
# reads them back from there): the stream paths, the rest of the API, the default (static files).
STREAM_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
API_METHODS = frozenset({"DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT"})
DEFAULT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The Function URL's CORS configuration (Terraform sets the same lists on the URL).
FUNCTION_URL_CORS = {
    "Access-Control-Allow-Methods": "GET, OPTIONS",
    "Access-Control-Allow-Headers": ("X-Amzn-Trace-Id, Last-Event-ID, X-SSE-Session-Id, X-SSE-Previous-Trace-Id, "
                                     "X-SSE-Connection-Sequence, Authorization, Content-Type"),
    "Access-Control-Expose-Headers": "x-amzn-trace-id, x-sse-resume-supported, retry-after",  # FR-082
    "Access-Control-Max-Age": "600",
}


@dataclass(frozen=True)
class EdgeRequest:
    """An HTTP request as the edge forwards it to an origin. `upstream` is its trace header as the
    origin reads it: None when absent or unreadable (the origin then starts a new trace)."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    source_ip: str
    upstream: TraceHeader | None

    def header(self, name: str) -> str | None:
        lowered = name.lower()
        return next((value for key, value in self.headers if key.lower() == lowered), None)


@dataclass
class EdgeResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class StreamingReply(Protocol):
    """A response whose body arrives over time (a RESPONSE_STREAM invocation)."""

    status: int
    headers: list[tuple[str, str]]

    def chunks(self) -> Iterator[bytes]: ...

    def close(self) -> None:
        """The client went away (or the relay is done): release the invocation."""


class ApiBackend(Protocol):
    def handle(self, request: EdgeRequest) -> EdgeResponse: ...


class StreamBackend(Protocol):
    def open(self, request: EdgeRequest) -> StreamingReply: ...


@dataclass
class BufferedReply:
    """A reply whose whole body is known at once (an origin's refusal, a throttle), shaped like a StreamingReply."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes = b""

    def chunks(self) -> Iterator[bytes]:
        yield self.body

    def close(self) -> None:
        pass


def readable_trace_header(raw: str | None) -> TraceHeader | None:
    """The trace header as an origin reads it: None when absent or unreadable (a new trace starts there)."""
    if raw is None or not raw.strip():
        return None
    try:
        return TraceHeader.parse(raw)
    except InvalidTraceHeaderError:
        return None


def _without_duplicates(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The first of each header name: the function's own headers win over the edge's defaults."""
    seen: set[str] = set()
    kept = []
    for key, value in headers:
        if key.lower() not in seen:
            seen.add(key.lower())
            kept.append((key, value))
    return kept


def _function_response(response: dict[str, Any]) -> EdgeResponse:
    """A response object a viewer-request function returned (functions-event-structure: response object)."""
    headers = [(name, str(item["value"])) for name, entry in (response.get("headers") or {}).items()
               for item in (entry.get("multiValue") or [entry])]
    body = response.get("body")
    data = (body.get("data", "") if isinstance(body, dict) else body or "").encode()
    return EdgeResponse(int(response["statusCode"]), headers, data)


def _json(status: int, error: str, message: str) -> EdgeResponse:
    body = json.dumps({"error": error, "message": message}).encode()
    return EdgeResponse(status, [("Content-Type", "application/json"), ("Content-Length", str(len(body)))], body)


# The distribution allows GET, HEAD, OPTIONS, PUT, PATCH, POST, DELETE; CloudFront answers any other
# method 403 itself: https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-403-invalid-method.html
INVALID_METHOD_BODY = (b"<html><head><title>403 ERROR</title></head><body><h1>403 ERROR</h1>"
                       b"<h2>The request could not be satisfied.</h2>This distribution is not configured to allow "
                       b"the HTTP request method that was used for this request.</body></html>")


def invalid_method() -> EdgeResponse:
    return EdgeResponse(403, [("Content-Type", "text/html"), ("X-Cache", "Error from cloudfront")], INVALID_METHOD_BODY)


class CloudFrontEdge:
    def __init__(self, api: ApiBackend | None, stream: StreamBackend | None, static_dir: Path | None,
                 host: str = "127.0.0.1", port: int = 8000, console: Console | None = None,
                 origin_access: OriginAccess | None = None, function: CloudFrontFunction | None = None):
        self.api = api
        self.stream = stream
        self.origin_access = origin_access or OriginAccess.from_stack()
        self.function = function or CloudFrontFunction()  # the deployed strip_sampling.js unless told otherwise
        self.static_dir = static_dir.resolve() if static_dir is not None else None
        self.console = console or Console(quiet=True)
        self.trace_views: LocalTraceViews | None = None  # set by the stack once its X-Ray API runs
        self.open_streams = 0
        # The `Parent` ids clients sent: API Gateway links its stage segment to the client's Parent, and a
        # browser writes no segment of its own, so these are the only parent ids a trace may lack.
        self.client_parents: set[str] = set()
        self._lock = threading.Lock()
        self._server = LoopbackServer.http(host, port, self._handler_class(), name="cloudfront-edge")

    @property
    def url(self) -> str:
        return self._server.url

    @property
    def port(self) -> int:
        return self._server.port

    def start(self) -> CloudFrontEdge:
        self.function.start()
        self._server.start()
        return self

    def stop(self) -> None:
        """Idempotent. Stops accepting; streams being relayed end with their invocations."""
        self._server.stop()
        self.function.stop()

    # routing -------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            server_version = "devstack-gateway"

            def log_message(self, format: str, *args: Any) -> None:  # the console has its own lines
                pass

            def __getattr__(self, name: str) -> Any:
                # Every method reaches the edge (TRACE, CONNECT, made-up ones): CloudFront, not the HTTP
                # server, decides what a method gets.
                if name.startswith("do_"):
                    return lambda: gateway._route(self)
                raise AttributeError(name)

        return Handler

    @staticmethod
    def allowed_methods(path: str) -> frozenset[str]:
        """The cache behaviour's allowed methods for `path` (path patterns in cloudfront.tf's order)."""
        if STREAM_PATH.match(path):
            return STREAM_METHODS
        if path.startswith("/api/v2/"):
            return API_METHODS
        return DEFAULT_METHODS

    def _route(self, handler: BaseHTTPRequestHandler) -> None:
        url = urlsplit(handler.path)
        # The devstack's own routes (trace links) first: they stand for nothing of CloudFront's.
        if self.trace_views is not None and self.trace_views.serves(url.path):
            status, body = self.trace_views.response(handler.command, url.path)
            self._reply(handler, EdgeResponse(status, [("Content-Type", "application/json"),
                                                       ("Cache-Control", "no-cache")], body))
            return
        if handler.command not in self.allowed_methods(url.path):
            self._reply(handler, invalid_method())
            handler.close_connection = True
            return
        if not url.path.startswith("/api/"):
            self._static(handler, url.path)
            return
        length = int(handler.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._reply(handler, _json(413, "payload_too_large", f"request body over {MAX_BODY_BYTES} bytes"))
            handler.close_connection = True
            return
        body = handler.rfile.read(length) if length else b""
        viewer_ip = str(handler.client_address[0])
        try:
            decided = self.function.viewer_request(handler.command, url.path, url.query,
                                                   list(handler.headers.items()), viewer_ip)
        except CloudFrontFunctionError as error:
            self.console.event("edge", "function error", outcome="503", detail=str(error)[:200])
            self._reply(handler, _json(503, "function_execution_error", "the CloudFront Function failed"))
            return
        if decided.response is not None:  # the function answered itself (strip_sampling.js never does)
            self._reply(handler, _function_response(decided.response))
            return
        upstream = readable_trace_header(next((v for k, v in decided.headers if k.lower() == TRACE_HEADER.lower()),
                                              None))
        if upstream is not None and upstream.parent is not None:
            with self._lock:
                self.client_parents.add(upstream.parent)
        if STREAM_PATH.match(url.path):
            signed = self.origin_access.sign_for_function_url(handler.command, url.path, url.query, decided.headers)
            self._function_url(handler, EdgeRequest(handler.command, url.path, url.query, signed, body, viewer_ip,
                                                    upstream))
        else:
            self._api(handler, EdgeRequest(handler.command, url.path, url.query,
                                           self.origin_access.to_api(decided.headers), body, viewer_ip, upstream))

    def _api(self, handler: BaseHTTPRequestHandler, request: EdgeRequest) -> None:
        if self.api is None:
            self._reply(handler, _json(503, "unavailable", "the dashboard API is not part of this stack yet"))
            return
        response = self.api.handle(request)
        self._reply(handler, response)

    def _cors(self, request: EdgeRequest) -> list[tuple[str, str]]:
        origin = request.header("Origin")
        return [("Access-Control-Allow-Origin", origin or "*"), ("Vary", "Origin"),
                *FUNCTION_URL_CORS.items()]

    def _function_url(self, handler: BaseHTTPRequestHandler, request: EdgeRequest) -> None:
        if request.method == "OPTIONS":  # the Function URL answers preflight itself; the function never sees it
            self._reply(handler, EdgeResponse(204, [*self._cors(request), ("Content-Length", "0")]))
            return
        if request.method != "GET":  # HEAD: what the Function URL does with it is not emulated
            self._reply(handler, _json(405, "method_not_allowed", "the stream endpoints accept GET only"))
            return
        if self.stream is None:
            self._reply(handler, _json(503, "unavailable", "the SSE function is not part of this stack yet"))
            return
        started = time.monotonic()
        reply = self.stream.open(request)
        headers = [(k, v) for k, v in reply.headers if k.lower() not in ("content-length", "transfer-encoding",
                                                                        "connection")]
        headers = _without_duplicates(headers + self._cors(request))
        trace_id = request.upstream.root if request.upstream else None
        if trace_id and not any(k.lower() == "x-amzn-trace-id" for k, _ in headers):
            headers.append(("x-amzn-trace-id", f"Root={trace_id}"))
        with self._lock:
            self.open_streams += 1
        self.console.event("sse", "connect", trace=trace_id, outcome=str(reply.status),
                           detail=f"{request.path} session={request.header('X-SSE-Session-Id') or '-'} "
                                  f"seq={request.header('X-SSE-Connection-Sequence') or '-'} "
                                  f"last-event-id={request.header('Last-Event-ID') or '-'}")
        sent, outcome = 0, "ended"
        watcher = threading.Thread(target=self._watch_client, args=(handler, reply), name="sse-client-watch",
                                   daemon=True)
        try:
            handler.send_response(reply.status)
            for key, value in headers:
                handler.send_header(key, value)
            handler.send_header("Transfer-Encoding", "chunked")
            handler.end_headers()
            watcher.start()
            for chunk in reply.chunks():
                if not chunk:
                    continue
                handler.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                handler.wfile.flush()
                sent += len(chunk)
            handler.wfile.write(b"0\r\n\r\n")
            handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            outcome = "client gone"
            handler.close_connection = True
        finally:
            reply.close()
            with self._lock:
                self.open_streams -= 1
            self.console.event("sse", "close", trace=trace_id, ms=(time.monotonic() - started) * 1000,
                               outcome=outcome, detail=f"{sent} bytes")

    @staticmethod
    def _watch_client(handler: BaseHTTPRequestHandler, reply: StreamingReply) -> None:
        """Close the reply as soon as the client hangs up, not at the next chunk (a heartbeat may be far off):
        the function then meets a closed connection on its next write, as behind a Function URL."""
        connection = handler.connection
        try:
            while True:
                readable, _, _ = select.select([connection], [], [], 1.0)
                if getattr(handler.wfile, "closed", False) or connection.fileno() < 0:
                    return
                if readable:
                    if connection.recv(1, socket.MSG_PEEK):
                        return  # the client sent something (not a hang-up): nothing to watch for any more
                    break
        except (OSError, ValueError):
            pass  # the socket is gone: that is a hang-up too
        reply.close()

    def _static(self, handler: BaseHTTPRequestHandler, path: str) -> None:
        if handler.command not in ("GET", "HEAD"):
            self._reply(handler, _json(405, "method_not_allowed", "static files accept GET only"))
            return
        if self.static_dir is None or not (self.static_dir / "index.html").is_file():
            message = b"The frontend is not built: run `make frontend-build` (or `cd frontend && npm run build`).\n"
            self._reply(handler, EdgeResponse(503, [("Content-Type", "text/plain; charset=utf-8"),
                                                    ("Content-Length", str(len(message)))], message))
            return
        relative = path.lstrip("/") or "index.html"
        target = (self.static_dir / relative).resolve()
        if not target.is_relative_to(self.static_dir) or not target.is_file():
            message = b"not found\n"
            self._reply(handler, EdgeResponse(404, [("Content-Type", "text/plain"),
                                                    ("Content-Length", str(len(message)))], message))
            return
        body = target.read_bytes()
        content_type = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        cache = "no-cache" if target.name == "index.html" else "public, max-age=3600"
        self._reply(handler, EdgeResponse(200, [("Content-Type", content_type), ("Content-Length", str(len(body))),
                                                ("Cache-Control", cache)], body))

    @staticmethod
    def _reply(handler: BaseHTTPRequestHandler, response: EdgeResponse) -> None:
        handler.send_response(response.status)
        names = set()
        for key, value in response.headers:
            handler.send_header(key, value)
            names.add(key.lower())
        if "content-length" not in names:
            handler.send_header("Content-Length", str(len(response.body)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(response.body)
