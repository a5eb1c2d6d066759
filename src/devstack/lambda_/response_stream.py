"""The caller's side of one invocation: the function's response as it arrives (`ResponseStream`).

`RuntimeApi.invoke(event) -> ResponseStream` returns at once; `prelude()` waits for status and
headers, `chunks()` yields the body as the function writes it (so the edge relays it live),
`close()` is the caller going away (the function is not told). A streamed
`application/vnd.awslambda.http-integration-response` is a JSON prelude (statusCode, headers,
cookies), eight NUL bytes, then the body (`wire`).

Example:
    >>> _http_prelude({"statusCode": 200, "headers": {"content-type": "text/event-stream"}})
    (200, [('content-type', 'text/event-stream')])
"""

from __future__ import annotations

import base64
import json
import socket
import struct
import threading
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Literal

from devstack.lambda_.invocation import Invocation
from devstack.lambda_.wire import HTTP_INTEGRATION, PRELUDE_DELIMITER

if TYPE_CHECKING:
    from devstack.lambda_.runtime_api import RuntimeApi

TIMEOUT_GRACE_S = 0.5  # how late past its deadline an invocation is declared timed out

Mode = Literal["buffered", "streaming"]


class FunctionError(Exception):
    """The function failed an invocation (what Lambda reports as `X-Amz-Function-Error`)."""

    def __init__(self, function: str, error_type: str, message: str, invocation: Invocation | None,
                 body: Mapping[str, Any] | None = None, xray_cause: Mapping[str, Any] | None = None):
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message
        self.invocation = invocation
        self.body = dict(body or {})
        self.xray_cause = xray_cause  # the runtime's `Lambda-Runtime-Function-XRay-Error-Cause`, if it sent one


class ResponseNotReadyError(TimeoutError):
    """The function has not answered (yet) within the time the caller would wait."""


class ProtocolError(ValueError):
    """The runtime broke the Runtime API protocol (bad chunking, bad prelude, bad JSON)."""


class ResponseStream:
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
        self.invocation.finish(failed=error is not None, cause=None if error is None else error.xray_cause)
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
        until it returns or times out, as Lambda lets it (the response streaming docs,
        https://docs.aws.amazon.com/lambda/latest/dg/configuration-response-streaming.html, document
        no signal to the function when its client leaves: undocumented, so the conservative reading).
        Returns the function's error type, if the invocation failed."""
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
