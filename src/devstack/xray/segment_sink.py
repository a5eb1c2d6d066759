"""Where every trace document goes: `PutTraceSegments` on the moto endpoint, and one JSON line each in
`<DEVSTACK_DIR>/traces/segments.jsonl` (DESIGN.md).

Both the X-Ray daemon (UDP, the SDK's subsegments and the Lambda facades) and the OTLP receiver
(OTel spans converted as the awsxray exporter does) hand documents to one `SegmentSink`, which
batches them on its own thread like the real daemon.

Example (not run: needs moto's X-Ray API):
    >>> sink = SegmentSink(xray_client, record_path=Path(".devstack/traces/segments.jsonl"))  # doctest: +SKIP
    >>> sink.start(); sink.submit(document_json); sink.wait_idle(); sink.stop()               # doctest: +SKIP
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from botocore.exceptions import ClientError

from lib.tracing.bounds import MAX_DOCUMENT_BYTES

log = logging.getLogger("devstack.xray.segment_sink")

MAX_BATCH = 50  # the real daemon's PutTraceSegments batch size
REQUIRED_FIELDS = ("name", "id", "trace_id", "start_time")


@dataclass
class SinkStats:
    submitted: int = 0
    stored: int = 0
    invalid: int = 0
    oversized: int = 0
    rejected: int = 0
    problems: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        if len(self.problems) < 100:
            self.problems.append(problem)


def document_problem(raw: str) -> str | None:
    """Why X-Ray would refuse this document, or None. Checked before sending, like the service does."""
    if len(raw.encode()) > MAX_DOCUMENT_BYTES:
        return f"document of {len(raw.encode())} bytes exceeds 64 KB"
    try:
        document = json.loads(raw)
    except ValueError:
        return "document is not JSON"
    if not isinstance(document, dict):
        return "document is not a JSON object"
    missing = [name for name in REQUIRED_FIELDS if name not in document]
    if missing:
        return f"document lacks {', '.join(missing)}"
    if "end_time" not in document and not document.get("in_progress"):
        return "document has neither end_time nor in_progress"
    return None


class SegmentSink:
    """Batches documents to PutTraceSegments and records every accepted one to segments.jsonl."""

    def __init__(self, xray_client: Any, record_path: Path | None = None, flush_interval_s: float = 0.05):
        self._xray = xray_client
        self._record_path = record_path
        self._flush_interval_s = flush_interval_s
        self._queue: deque[str] = deque()
        self._busy = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="segment-sink", daemon=True)
        self.stats = SinkStats()
        self._lock = threading.Lock()

    def start(self) -> SegmentSink:
        if self._record_path is not None:
            self._record_path.parent.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        return self

    def submit(self, raw_document: str) -> None:
        self._queue.append(raw_document)
        with self._lock:
            self.stats.submitted += 1

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        """True once everything submitted so far has been sent."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if not self._queue and not self._busy:
                return True
            time.sleep(0.01)
        return False

    def stop(self) -> None:
        self.wait_idle()
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            if not self._queue:
                time.sleep(self._flush_interval_s)
                continue
            self._busy = True
            try:
                batch: list[str] = []
                while self._queue and len(batch) < MAX_BATCH:
                    batch.append(self._queue.popleft())
                self._send(batch)
            finally:
                self._busy = False

    def _send(self, batch: list[str]) -> None:
        valid: list[str] = []
        for raw in batch:
            problem = document_problem(raw)
            if problem is None:
                valid.append(raw)
                continue
            with self._lock:
                if "exceeds 64 KB" in problem:
                    self.stats.oversized += 1
                else:
                    self.stats.invalid += 1
                self.stats.note(problem)
            log.warning("refused trace document: %s", problem)
        if not valid:
            return
        try:
            response = self._xray.put_trace_segments(TraceSegmentDocuments=valid)
        except ClientError as error:  # as the real daemon: a refused batch (AccessDenied...) is logged, dropped
            with self._lock:
                self.stats.rejected += len(valid)
                self.stats.note(f"PutTraceSegments refused: {error.response['Error'].get('Code')}")
            log.warning("PutTraceSegments refused a batch of %d: %s", len(valid), error)
            return
        unprocessed = {item.get("Id") for item in response.get("UnprocessedTraceSegments", [])}
        stored = [raw for raw in valid if json.loads(raw)["id"] not in unprocessed]
        with self._lock:
            self.stats.stored += len(stored)
            self.stats.rejected += len(valid) - len(stored)
        for item in response.get("UnprocessedTraceSegments", []):
            self.stats.note(f"X-Ray rejected {item.get('Id')}: {item.get('Message')}")
        if self._record_path is not None and stored:
            with self._record_path.open("a", encoding="utf-8") as record:
                record.writelines(json.dumps(json.loads(raw), separators=(",", ":")) + "\n" for raw in stored)
