"""The stream phase: runs after the handler returned, as the runtime pulls the body (FR-001).

The X-Ray SDK cannot follow here (FR-026/027), so every step is an OTel span under the
invocation's context, extracted in the handler phase (FR-059): the stream span
(`sse.global_stream` / `sse.config_stream`), one `sse.poll` per cycle (with its DynamoDB query on
a cache miss), one `sse.dispatch` per event, the CloudWatch `PutMetricData` of the cycle and
`sse.connection.release`. Between cycles the stream reads the news table's change marker every
`SSE_MARKER_INTERVAL_S` (a `DynamoDB.GetItem` span, feed.py); a cycle comes when the marker moved
and the item it announced has settled, when an item a query saw is about to settle, and every
poll interval as a safety net. The body is a
plain generator, traced step by step, never wrapped in a decorator (FR-031). Spans are flushed
after every poll cycle and, bounded, in the generator's `finally` whatever ended the stream (FR-055).

Lambda never tells a streaming function that its client went away: writes go on succeeding and
the function runs until it returns or times out (FR-085). So every stream ends itself (FR-090):
`SSE_STREAM_LIFETIME_S` after it began, or `SSE_DEADLINE_MARGIN_S` before the invocation deadline
if that comes first, with a final `reconnect` event (`retry: 0`, reconnect at once) whose id
carries the stream's cursor, so the client resumes with `Last-Event-ID` and nothing is lost or
repeated. The stream span's `end_reason` says which: `lifetime`, `deadline` or `error`.

Example:
    >>> body = stream_events(plan)              # doctest: +SKIP
    >>> next(body)                              # doctest: +SKIP
    b'retry: 1000\\nid: 2026-11-25T08:00:00.123Z//000001\\nevent: heartbeat\\ndata: {...}\\n\\n'
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from opentelemetry.context import Context

from lambdas.sse_streaming.connections import Lease
from lambdas.sse_streaming.events import Position, frame
from lambdas.sse_streaming.feed import FEED, FeedItem, Marker, read_marker
from lambdas.sse_streaming.request import StreamRequest
from lambdas.sse_streaming.settings import SseSettings
from lib.metrics import Metric, metric_datum, put_metrics
from lib.news.model import iso_ms, parse_iso
from lib.tracing.annotations import AnnotationValue
from lib.tracing.otel import (
    MAX_EVENTS_PER_POLL,
    aws_call_span,
    bounded_span,
    flush,
    invocation_context,
    set_annotations,
)

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

LABELS = ("positive", "neutral", "negative")
# An early poll for a settling item waits past its millisecond, and never spins.
SETTLE_MARGIN = dt.timedelta(milliseconds=2)
MIN_POLL_GAP_S = 0.02


@dataclass(frozen=True)
class StreamPlan:
    """Everything the handler phase decided for one stream."""

    settings: SseSettings
    request: StreamRequest
    lease: Lease
    parent: Context
    deadline_monotonic: float
    cursor: Position
    is_cold_start: bool
    ticker: str | None = None  # a config stream carries its alert's ticker only

    @property
    def stream_type(self) -> str:
        return "config" if self.request.route == "config" else "global"

    def annotations(self) -> dict[str, AnnotationValue]:
        session = self.request.session
        values: dict[str, AnnotationValue | None] = {
            "stream_type": self.stream_type, "connection_id": self.lease.connection_id,
            "current_count": self.lease.current_count, "max_connections": self.lease.max_connections,
            "is_cold_start": self.is_cold_start, "resumed": self.request.last_event_id is not None,
            "session_id": session.session_id, "previous_trace_id": session.previous_trace_id,
            "connection_sequence": session.connection_sequence,
        }
        return {key: value for key, value in values.items() if value is not None}


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class _Stream:
    def __init__(self, plan: StreamPlan):
        self.plan = plan
        self.settings = plan.settings
        self.cursor = plan.cursor
        self.sequence = 0
        self.events_sent = 0
        self.counts: Counter[str] = Counter({label: 0 for label in LABELS})
        self.samples: list[MetricDatumTypeDef] = []
        self.settle_due: float | None = None  # monotonic time the earliest settling item becomes readable
        self.marker: Marker | None = None  # the change marker as last read
        # Without the marker every poll queries (half an interval: the next poll always finds it expired);
        # with it, the window is refreshed by a moved marker, and at least every poll interval.
        settings = plan.settings
        self.ttl_s = settings.poll_interval_s if settings.marker_interval_s else settings.poll_interval_s / 2

    def run(self) -> Generator[bytes, None, str]:
        """The stream's frames; returns why it ended (`lifetime` or `deadline`)."""
        settings = self.settings
        lifetime_end = time.monotonic() + settings.stream_lifetime_s
        deadline_end = self.plan.deadline_monotonic - settings.deadline_margin_s
        end_reason = "lifetime" if lifetime_end <= deadline_end else "deadline"
        end_at = min(lifetime_end, deadline_end)
        yield from self._control("heartbeat", {"ts": iso_ms(_utc_now())}, retry_ms=settings.retry_ms)  # FR-088
        next_poll = next_marker = time.monotonic()
        next_heartbeat = next_poll + settings.heartbeat_interval_s
        while True:
            now = time.monotonic()
            if now >= end_at:
                break
            if settings.marker_interval_s and now >= next_marker:
                news_due = self._read_marker()
                if news_due is not None:
                    next_poll = min(next_poll, news_due)
                next_marker = max(next_marker + settings.marker_interval_s, time.monotonic())
            if time.monotonic() >= next_poll:
                delivered = self._poll()
                for item in delivered:
                    yield from self._dispatch_item(item)
                if delivered:
                    yield from self._metrics_event()
                self._publish_metrics()
                flush()  # proactive, each cycle (FR-055, FR-074/075): little is left for the freeze
                next_poll = max(next_poll + settings.poll_interval_s, time.monotonic())
                if self.settle_due is not None:  # an item settles before then: deliver it as it does
                    next_poll = min(next_poll, max(self.settle_due, time.monotonic() + MIN_POLL_GAP_S))
            if time.monotonic() >= next_heartbeat:
                yield from self._control("heartbeat", {"ts": iso_ms(_utc_now())})
                yield from self._metrics_event()
                next_heartbeat += settings.heartbeat_interval_s
            wake = min(next_poll, next_heartbeat, end_at, next_marker if settings.marker_interval_s else end_at)
            time.sleep(max(0.0, wake - time.monotonic()))
        # FR-090: reconnect at once; `retry: 0` tells any EventSource client the same (FR-089).
        yield from self._control("reconnect", {"reason": end_reason, "reconnect_after_ms": 0}, retry_ms=0)
        return end_reason

    def _read_marker(self) -> float | None:
        """Read the change marker; when it announced news, the monotonic time to query: once the
        announced item has settled (a query before would only see it settling)."""
        self.marker = read_marker(self.settings.news_table)
        if not FEED.has_news(self.marker):
            return None
        if self.marker.changed_at is None:
            return time.monotonic()
        settled = parse_iso(self.marker.changed_at) + dt.timedelta(seconds=self.settings.index_settle_s)
        return time.monotonic() + max(0.0, (settled + SETTLE_MARGIN - _utc_now()).total_seconds())

    def _poll(self) -> list[FeedItem]:
        settings = self.settings
        with bounded_span("sse.poll") as span:
            started = time.monotonic()
            now = _utc_now()
            settle = dt.timedelta(seconds=settings.index_settle_s)
            read = FEED.read(settings.news_table, self.cursor, iso_ms(now - settle),
                             ttl_s=self.ttl_s, visible_ts=iso_ms(now), marker=self.marker)
            self.settle_due = None if read.next_settle_ts is None else time.monotonic() + (
                parse_iso(read.next_settle_ts) + settle + SETTLE_MARGIN - now).total_seconds()
            delivered: list[FeedItem] = []
            cursor = self.cursor
            for item in read.items:
                cursor = item.position
                if self.plan.ticker is None or item.ticker == self.plan.ticker:
                    delivered.append(item)
                    if len(delivered) == MAX_EVENTS_PER_POLL:
                        break
            else:
                cursor = max(cursor, read.horizon)
            self.cursor = cursor
            duration_ms = round((time.monotonic() - started) * 1000, 3)
            labels = Counter(item.label for item in delivered)
            set_annotations(span, {
                "cache_hit": read.cache_hit, "trigger": read.trigger, "cache_hit_rate": read.cache_hit_rate,
                "cache_entry_count": read.cache_entry_count, "cache_max_entries": read.cache_max_entries,
                "is_cold_start": self.plan.is_cold_start, "item_count": len(read.items),
                "changed_count": len(delivered), "poll_duration_ms": duration_ms,
                # the dominant label of what this poll delivered
                "sentiment_type": labels.most_common(1)[0][0] if labels else "none",
            })
        if read.query is not None:  # PollDurationMs measures DynamoDB, not cache hits
            self.samples.append(metric_datum(Metric.POLL_DURATION_MS, read.query.duration_ms, "Milliseconds"))
        return delivered

    def _dispatch(self, event_type: str, payload: bytes, annotations: dict[str, AnnotationValue]) -> Iterator[bytes]:
        with bounded_span("sse.dispatch") as span:
            set_annotations(span, {"event_type": event_type, "connection_count": self.plan.lease.current_count,
                                   "is_cold_start": self.plan.is_cold_start, **annotations})
            yield payload
            self.events_sent += 1

    def _control(self, event_type: str, data: dict[str, Any], retry_ms: int | None = None) -> Iterator[bytes]:
        self.sequence += 1
        yield from self._dispatch(event_type, frame(event_type, data, self.cursor.event_id(self.sequence), retry_ms),
                                  {})

    def _metrics_event(self) -> Iterator[bytes]:
        yield from self._control("metrics", {"counts": dict(self.counts)})

    def _dispatch_item(self, item: FeedItem) -> Iterator[bytes]:
        latency_ms = round((_utc_now() - parse_iso(item.analyzed_at)).total_seconds() * 1000, 3)
        skewed = latency_ms < 0  # the analysing function's clock is ahead of ours
        if not skewed:
            self.samples.append(metric_datum(Metric.EVENT_LATENCY_MS, latency_ms, "Milliseconds"))
        self.counts[item.label] += 1
        payload = frame("sentiment_update", item.event_data(), item.position.item_event_id())
        yield from self._dispatch("sentiment_update", payload, {"latency_ms": latency_ms, "is_clock_skew": skewed})

    def _publish_metrics(self) -> None:
        if not self.samples:
            return
        with aws_call_span("CloudWatch", "PutMetricData"):
            put_metrics(self.samples)
        self.samples = []


def stream_events(plan: StreamPlan) -> Iterator[bytes]:
    """The SSE body of one stream. Its `finally` releases the connection and flushes (FR-055)."""
    stream = _Stream(plan)
    # Anything but the stream's own end is an error: an exception, or the runtime closing the body
    # early (GeneratorExit), which it does only when its Runtime API connection broke.
    end_reason = "error"
    try:
        with invocation_context(parent=plan.parent, deadline_monotonic=plan.deadline_monotonic), \
                bounded_span(f"sse.{plan.stream_type}_stream") as span:
            set_annotations(span, plan.annotations())
            try:
                end_reason = yield from stream.run()
            finally:
                with bounded_span("sse.connection.release") as release:
                    remaining = plan.lease.release()
                    set_annotations(release, {"connection_id": plan.lease.connection_id,
                                              "current_count": remaining,
                                              "max_connections": plan.lease.max_connections})
                set_annotations(span, {"end_reason": end_reason, "events_sent": stream.events_sent})
    finally:
        plan.lease.release()
        flush()
