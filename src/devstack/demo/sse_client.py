"""A reusable SSE client that behaves like one dashboard tab (frontend/src): a stable session id, a
connection sequence, the previous connection's trace id, `Last-Event-ID` on reconnect, and a browser's
trace header (a fresh `Root` and `Parent`, no sampling decision: FR-035).

Example (not run: needs a running stack):
    >>> session = SseSession("http://127.0.0.1:8000")              # doctest: +SKIP
    >>> session.connect()                                          # doctest: +SKIP
    200
    >>> event, seen = session.next_event(lambda e: e.event == "heartbeat")  # doctest: +SKIP
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import sseclient

from lib.tracing.header import TraceHeader, new_entity_id

SSE_WAIT_S = 45.0


class NoMatchingEventError(TimeoutError):
    """No event the caller accepts arrived in time (or the stream ended first)."""


def browser_header() -> TraceHeader:
    """What the frontend sends: a fresh root, its own parent id, no sampling decision."""
    return TraceHeader(root=TraceHeader.new_root().root, parent=new_entity_id())


class SseSession:
    """One tab's SSE client, as the frontend behaves: stable session id, sequence, previous trace id."""

    def __init__(self, base_url: str):
        self.base_url = base_url
        self.session_id = secrets.token_hex(16)
        self.sequence = 0
        self.previous_trace_id: str | None = None
        self.last_event_id: str | None = None
        self.events: queue.Queue[Any] = queue.Queue()
        self.response: requests.Response | None = None
        self.trace_id: str | None = None
        self.retry_ms: int | None = None

    def connect(self, path: str = "/api/v2/stream") -> int:
        self.sequence += 1
        header = browser_header()
        headers = {"X-Amzn-Trace-Id": header.format(), "X-SSE-Session-Id": self.session_id,
                   "X-SSE-Connection-Sequence": str(self.sequence), "Accept": "text/event-stream"}
        if self.previous_trace_id:
            headers["X-SSE-Previous-Trace-Id"] = self.previous_trace_id
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        self.events = queue.Queue()  # this connection's events only
        self.response = requests.get(self.base_url + path, headers=headers, stream=True, timeout=(5, SSE_WAIT_S))
        returned = TraceHeader.parse(self.response.headers["x-amzn-trace-id"]).root \
            if "x-amzn-trace-id" in self.response.headers else header.root
        self.trace_id = returned
        if self.response.status_code == 200:
            threading.Thread(target=self._read, args=(self.response, self.events), daemon=True,
                             name="sse-reader").start()
        return self.response.status_code

    @staticmethod
    def _read(response: requests.Response, events: queue.Queue[Any]) -> None:
        try:
            for event in sseclient.SSEClient(response.iter_content(chunk_size=None)).events():
                events.put(event)
        except (requests.RequestException, OSError, AttributeError):
            pass  # the demo cut the connection: the reader ends with it
        events.put(None)

    def next_event(self, accept: Callable[[Any], bool], timeout_s: float = SSE_WAIT_S) -> tuple[Any, list[Any]]:
        """The first event `accept`s, and every event seen before it (ids remembered, as the browser does)."""
        seen: list[Any] = []
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            try:
                event = self.events.get(timeout=max(0.05, end - time.monotonic()))
            except queue.Empty:
                break
            if event is None:
                break
            if event.retry:
                self.retry_ms = int(event.retry)
            if event.id:
                self.last_event_id = event.id
            seen.append(event)
            if accept(event):
                return event, seen
        raise NoMatchingEventError(f"no matching SSE event within {timeout_s:.0f} s (saw {[e.event for e in seen]})")

    def cut(self) -> None:
        """Drop the connection the way a network failure does; the next connection follows up on it."""
        if self.response is not None:
            self.previous_trace_id = self.trace_id
            self.response.close()
            self.response = None
