"""The Lambda Extensions API of one execution environment, served beside its Runtime API.

Lambda serves both APIs on the one address in `AWS_LAMBDA_RUNTIME_API`
(https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html, "Extensions API
reference"); `runtime_api.RuntimeApi` routes every `/2020-01-01/extension/*` request here. What the
reference specifies, and this module does:

- `POST /2020-01-01/extension/register`, header `Lambda-Extension-Name` (the extension's file
  name), body `{"events": [...]}` (INVOKE and/or SHUTDOWN): 200, the id in the
  `Lambda-Extension-Identifier` header, body `{"functionName", "functionVersion", "handler"}`;
  a missing name or an unknown event is a 400 (`errorMessage`, `errorType`).
- `GET /2020-01-01/extension/event/next`, header `Lambda-Extension-Identifier`: blocks until the
  next event the extension registered for, then 200 with `Lambda-Extension-Event-Identifier`.
  INVOKE: `{"eventType", "deadlineMs", "requestId", "invokedFunctionArn", "tracing": {"type":
  "X-Amzn-Trace-Id", "value"}}`; SHUTDOWN: `{"eventType", "shutdownReason", "deadlineMs"}`. An
  unknown identifier is a 403.
- `POST .../init/error` and `.../exit/error` (header `Lambda-Extension-Function-Error-Type`): 202,
  and the error is kept (`errors`) for the one who runs the environment.

The Init phase runs extension init before runtime init ("Lambda execution environment
lifecycle" on the same page): whoever starts the environment (`container.ContainerRuntime`) waits
with `wait_registered` before starting the runtime. Shutdown gives external extensions 2,000 ms
(the same page, "Shutdown phase"): `SHUTDOWN_DEADLINE_MS`.

Example:
    >>> api = ExtensionsApi("sentiment-analyzer-dev-sse_streaming", "lambdas.sse_streaming.handler.lambda_handler")
    >>> api.registered()
    []
"""

from __future__ import annotations

import json
import queue
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any

from devstack.lambda_.wire import (
    EXTENSION_API_PREFIX,
    EXTENSION_ERROR_TYPE_HEADER,
    EXTENSION_EVENT_ID_HEADER,
    EXTENSION_EVENTS,
    EXTENSION_EXIT_ERROR_PATH,
    EXTENSION_ID_HEADER,
    EXTENSION_INIT_ERROR_PATH,
    EXTENSION_NAME_HEADER,
    EXTENSION_NEXT_PATH,
    EXTENSION_REGISTER_PATH,
    SHUTDOWN_REASONS,
    TRACING_TYPE,
)
from devstack.loopback import send_reply

SHUTDOWN_DEADLINE_MS = 2000  # the Shutdown phase's limit with one or more external extensions
MAX_BODY_BYTES = 64 * 1024


@dataclass
class Extension:
    """One registered extension: its name, the events it asked for, the events waiting for it."""

    identifier: str
    name: str
    events: tuple[str, ...]
    pending: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    shut_down: bool = False  # SHUTDOWN was handed to it
    ready_at: float | None = None  # monotonic: its first event/next (its init done)


class ExtensionsApi:
    """The Extensions API of one execution environment (routed to by its RuntimeApi endpoint)."""

    def __init__(self, function_name: str, handler: str):
        self.function_name = function_name
        self.handler = handler
        self.errors: list[tuple[str, str, str]] = []  # (extension name, init|exit, error type)
        self._extensions: dict[str, Extension] = {}
        self._changed = threading.Condition()
        self._stopping = threading.Event()

    @staticmethod
    def handles(path: str) -> bool:
        return path.startswith(EXTENSION_API_PREFIX + "/")

    def registered(self) -> list[str]:
        """The names of the registered extensions, in registration order."""
        with self._changed:
            return [extension.name for extension in self._extensions.values()]

    def wait_registered(self, count: int, timeout_s: float) -> bool:
        """True once `count` extensions registered (extension init done), False at the timeout."""
        end = time.monotonic() + timeout_s
        with self._changed:
            while len(self._extensions) < count:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def ready_at(self) -> float | None:
        """When the last registered extension first asked for an event (monotonic): extension init done
        for all of them; None while one has not yet."""
        with self._changed:
            times = [extension.ready_at for extension in self._extensions.values()]
        ready = [at for at in times if at is not None]
        return max(ready) if ready and len(ready) == len(times) else None

    # -- events ------------------------------------------------------------------------------------
    def invoke(self, request_id: str, deadline_ms: int, function_arn: str, trace_header: str) -> None:
        """An invocation went to the runtime: every extension registered for INVOKE gets the event."""
        self._send("INVOKE", {"eventType": "INVOKE", "deadlineMs": deadline_ms, "requestId": request_id,
                              "invokedFunctionArn": function_arn,
                              "tracing": {"type": TRACING_TYPE, "value": trace_header}})

    def shutdown(self, reason: str = "spindown") -> int:
        """The environment is going away: SHUTDOWN to every extension registered for it. Returns the
        deadline (epoch ms) by which they should have exited."""
        if reason not in SHUTDOWN_REASONS:
            raise ValueError(f"no shutdown reason {reason!r} ({', '.join(SHUTDOWN_REASONS)})")
        deadline_ms = int(time.time() * 1000) + SHUTDOWN_DEADLINE_MS
        self._send("SHUTDOWN", {"eventType": "SHUTDOWN", "shutdownReason": reason, "deadlineMs": deadline_ms})
        return deadline_ms

    def stop(self) -> None:
        """Release every blocked event/next (the endpoint is closing)."""
        self._stopping.set()

    def _send(self, event_type: str, event: Mapping[str, Any]) -> None:
        with self._changed:
            targets = [extension for extension in self._extensions.values() if event_type in extension.events]
        for extension in targets:
            extension.pending.put(dict(event))

    # -- HTTP ----------------------------------------------------------------------------------------
    def route(self, request: BaseHTTPRequestHandler, method: str, path: str) -> None:
        if method == "POST" and path == EXTENSION_REGISTER_PATH:
            self._register(request)
        elif method == "GET" and path == EXTENSION_NEXT_PATH:
            self._next(request)
        elif method == "POST" and path in (EXTENSION_INIT_ERROR_PATH, EXTENSION_EXIT_ERROR_PATH):
            self._error(request, "init" if path == EXTENSION_INIT_ERROR_PATH else "exit")
        else:
            _reply(request, 404, {"errorType": "NotFound", "errorMessage": f"unknown path {path[:100]}"})

    def _register(self, request: BaseHTTPRequestHandler) -> None:
        name = request.headers.get(EXTENSION_NAME_HEADER, "")
        body = _json_body(request)
        events = body.get("events") if isinstance(body, dict) else None
        if not name:
            _reply(request, 400, {"errorType": "Extension.InvalidRequest",
                                  "errorMessage": f"{EXTENSION_NAME_HEADER} header is required"})
            return
        if not isinstance(events, list) or any(event not in EXTENSION_EVENTS for event in events):
            _reply(request, 400, {"errorType": "Extension.InvalidRequest",
                                  "errorMessage": f"events must be a list of {', '.join(EXTENSION_EVENTS)}"})
            return
        extension = Extension(str(uuid.uuid4()), name, tuple(events))
        with self._changed:
            self._extensions[extension.identifier] = extension
            self._changed.notify_all()
        _reply(request, 200, {"functionName": self.function_name, "functionVersion": "$LATEST",
                              "handler": self.handler}, {EXTENSION_ID_HEADER: extension.identifier})

    def _known(self, request: BaseHTTPRequestHandler) -> Extension | None:
        with self._changed:
            extension = self._extensions.get(request.headers.get(EXTENSION_ID_HEADER, ""))
        if extension is None:
            _reply(request, 403, {"errorType": "Extension.Forbidden",
                                  "errorMessage": f"unknown or missing {EXTENSION_ID_HEADER}"})
        return extension

    def _next(self, request: BaseHTTPRequestHandler) -> None:
        extension = self._known(request)
        if extension is None:
            return
        if extension.ready_at is None:
            extension.ready_at = time.monotonic()
        while not self._stopping.is_set():
            try:
                event = extension.pending.get(timeout=0.2)
            except queue.Empty:
                continue
            extension.shut_down = event["eventType"] == "SHUTDOWN"
            _reply(request, 200, event, {EXTENSION_EVENT_ID_HEADER: str(uuid.uuid4())})
            return
        request.close_connection = True

    def _error(self, request: BaseHTTPRequestHandler, phase: str) -> None:
        extension = self._known(request)
        if extension is None:
            return
        _json_body(request)
        error_type = request.headers.get(EXTENSION_ERROR_TYPE_HEADER, "")
        with self._changed:
            self.errors.append((extension.name, phase, error_type))
        _reply(request, 202, {"status": "OK"})


def _json_body(request: BaseHTTPRequestHandler) -> Any:
    try:
        length = min(int(request.headers.get("Content-Length", "0")), MAX_BODY_BYTES)
    except ValueError:
        length = 0
    raw = request.rfile.read(length) if length else b""
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return None


def _reply(request: BaseHTTPRequestHandler, status: int, body: Mapping[str, Any],
           headers: Mapping[str, str] | None = None) -> None:
    send_reply(request, status, json.dumps(body).encode(), headers=headers)
