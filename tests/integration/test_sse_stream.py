"""The SSE Lambda as it runs in its image: the real `docker/sse/bootstrap` as a child process against
the local Runtime API, moto, and the local trace pipeline (X-Ray daemon + OTLP receiver).

Each `SseEnvironment` is the function: a Runtime API and its bootstrap processes, one execution
environment each, serving one invocation at a time as classic Lambda does. The module's shared one
(one environment) stays warm across tests, as Lambda keeps an environment; tests that need other
settings (collector down, short lifetimes, several environments) start their own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.lambda_.events import function_url_event
from devstack.lambda_.invocation import lambda_environment
from devstack.lambda_.lambda_service import runtime_command
from devstack.lambda_.process import RuntimeProcess
from devstack.lambda_.response_stream import ResponseStream
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.lambda_.wire import PRELUDE_DELIMITER
from devstack.stack import SRC_ROOT, load_stack
from devstack.xray.collector_config import load_indexed_attributes
from devstack.xray.otlp_receiver import OtlpReceiver
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import TraceTree, document_problems
from lib.news.model import iso_ms
from lib.tracing.header import TraceHeader, new_entity_id
from lib.tracing.otel import EXPORT_TIMEOUT_S

SPEC = load_stack().function("sse_streaming")
FAST = {"SSE_POLL_INTERVAL_S": "0.2", "SSE_HEARTBEAT_INTERVAL_S": "0.5", "SSE_DEADLINE_MARGIN_S": "0.4",
        "SSE_INDEX_SETTLE_MS": "100", "SSE_RETRY_MS": "1500"}
FRAME_LINE = re.compile(r"^(retry|id|event|data): (.*)$")
# Attributes of the OTel semantic conventions (FR-067): metadata by design. Everything else our
# spans carry must be indexed (an annotation), or operators could not filter on it.
CONVENTION_ATTRIBUTES = {"rpc.system", "rpc.service", "rpc.method", "db.system", "db.operation",
                         "aws.dynamodb.table_names"}


# -- the local stack around the function ------------------------------------------------------------
class RecordingSink:
    """Forwards documents to the pipeline's sink, remembering what arrived for which trace, and when."""

    def __init__(self, sink: Any):
        self._sink = sink
        self._lock = threading.Lock()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []

    def submit(self, raw_document: str) -> None:
        with self._lock:
            self.arrivals.append((time.monotonic(), json.loads(raw_document)))
        self._sink.submit(raw_document)

    def documents(self, trace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            return [doc for _, doc in self.arrivals if doc["trace_id"] == trace_id]


@dataclass
class Collector:
    receiver: OtlpReceiver
    sink: RecordingSink


@pytest.fixture(scope="module")
def collector(trace_pipeline: TracePipeline) -> Iterator[Collector]:
    """This module's stand-in for the collector extension, indexing what the image's config indexes."""
    sink = RecordingSink(trace_pipeline.sink)
    receiver = OtlpReceiver(sink, load_indexed_attributes()).start()  # type: ignore[arg-type]
    yield Collector(receiver, sink)
    receiver.stop()


class SseEnvironment:
    """The SSE function: a local Runtime API and `environments` real bootstrap processes polling it."""

    def __init__(self, pipeline: TracePipeline, moto: MotoServer, resources: Resources, traces_endpoint: str,
                 overrides: Mapping[str, str], handler: str = SPEC.handler, environments: int = 1):
        self.runtime = RuntimeApi(SPEC, pipeline.daemon.address)
        resolved = {name: resources.resolve(value) for name, value in SPEC.env.items()}
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), **moto.environment(),
            **lambda_environment(SPEC, {**resolved, **FAST, **overrides}, pipeline.daemon.address),
            "PYTHONPATH": str(SRC_ROOT), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_endpoint,
        }
        # ENTRYPOINT + image command (the handler), as Lambda starts the image; no _HANDLER
        command = runtime_command(dataclasses.replace(SPEC, handler=handler))
        self.processes = [RuntimeProcess(self.runtime, command, environment) for _ in range(environments)]
        self.process = self.processes[0]

    def start(self) -> SseEnvironment:
        self.runtime.start()
        for process in self.processes:
            process.start()
        return self

    def stop(self) -> None:
        for process in self.processes:
            process.stop()
        self.runtime.stop()

    def warm_up(self) -> SseEnvironment:
        """One status call per environment, so a stream's short deadline is not spent on a cold start."""
        calls = [self.open("/api/v2/stream/status", timeout_s=60) for _ in self.processes]
        assert [call.prelude(60)[0] for call in calls] == [200] * len(calls)
        return self

    def open(self, path: str = "/api/v2/stream", headers: Mapping[str, str] | None = None,
             upstream: TraceHeader | None = None, timeout_s: float = 2.5, method: str = "GET") -> ResponseStream:
        return self.runtime.invoke(function_url_event(method, path, headers), upstream=upstream, timeout_s=timeout_s)


@pytest.fixture(scope="module")
def start_environment(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources,
                      collector: Collector) -> Iterator[Callable[..., Any]]:
    started: list[SseEnvironment] = []

    @contextmanager
    def start(overrides: Mapping[str, str] | None = None, traces_endpoint: str | None = None,
              handler: str = SPEC.handler, environments: int = 1) -> Iterator[SseEnvironment]:
        environment = SseEnvironment(trace_pipeline, moto_server, stack_resources,
                                     traces_endpoint or collector.receiver.endpoint, overrides or {}, handler,
                                     environments).start()
        if handler == SPEC.handler:
            environment.warm_up()
        started.append(environment)
        try:
            yield environment
        finally:
            environment.stop()

    yield start
    for environment in started:
        environment.stop()


@pytest.fixture(scope="module")
def sse(start_environment: Callable[..., Any]) -> Iterator[SseEnvironment]:
    """The module's warm execution environment."""
    with start_environment() as environment:
        yield environment


@pytest.fixture(scope="module")
def news_table(stack_resources: Resources) -> Any:
    return boto3.resource("dynamodb").Table(stack_resources.tables["news"])


# -- data and frames --------------------------------------------------------------------------------
def seed(table: Any, ticker: str, label: str = "positive", score: float = 0.5) -> dict[str, Any]:
    """One analysed item, as the analysis Lambda leaves it (status changed now)."""
    now = dt.datetime.now(dt.UTC)
    stamp = iso_ms(now)
    item = {"item_id": secrets.token_hex(16), "published_at": iso_ms(now - dt.timedelta(minutes=3)),
            "ticker": ticker, "headline": f"{ticker} news {secrets.token_hex(3)} \u2014 \"quoted\"",
            "summary": "s", "source": "tiingo", "url": "https://example.invalid/a", "status": "analyzed",
            "status_changed_at": stamp, "ingested_at": stamp, "analyzed_at": stamp,
            "sentiment_label": label, "sentiment_score": Decimal(str(score)), "expires_at": 0,
            "analysis_trace_id": f"1-{int(now.timestamp()):08x}-{secrets.token_hex(12)}"}
    table.put_item(Item=item)
    return item


def expected_frame(item: Mapping[str, Any]) -> bytes:
    """specs/contracts.md: a sentiment_update frame, built here independently of the function's code."""
    data = {"item_id": item["item_id"], "ticker": item["ticker"], "headline": item["headline"],
            "label": item["sentiment_label"], "score": float(item["sentiment_score"]),
            "published_at": item["published_at"], "analyzed_at": item["analyzed_at"],
            "trace_id": item["analysis_trace_id"]}
    return (f"id: {item['status_changed_at']}/{item['item_id']}\nevent: sentiment_update\n"
            f"data: {json.dumps(data, separators=(',', ':'))}\n\n").encode()


def parse_frames(body: bytes) -> list[dict[str, str]]:
    """Strictly: every frame is `field: value` lines ending in a blank line; nothing else."""
    text = body.decode()
    assert text.endswith("\n\n"), text[-80:]
    frames = []
    for block in text[:-2].split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            match = FRAME_LINE.match(line)
            assert match is not None and match[1] not in fields, f"bad frame line {line!r}"
            fields[match[1]] = match[2]
        assert fields.keys() >= {"id", "event", "data"}, block
        frames.append(fields)
    return frames


def items_of(frames: list[dict[str, str]], ticker: str | None = None) -> list[str]:
    return [json.loads(frame["data"])["item_id"] for frame in frames if frame["event"] == "sentiment_update"
            and (ticker is None or json.loads(frame["data"])["ticker"] == ticker)]


def read_until(call: ResponseStream, done: Callable[[bytes], bool]) -> bytes:
    """Body bytes as they arrive, until `done(body so far)` or the end of the stream."""
    body = b""
    for chunk in call.chunks():
        body += chunk
        if done(body):
            break
    return body


def stream_documents(tree: TraceTree) -> list[dict[str, Any]]:
    """The streaming phase's documents (OTel spans), not the facade or the handler's subsegments."""
    return [doc for doc in tree.documents if doc.get("origin") is None and not str(doc["name"]).startswith("##")]


def upstream_header() -> TraceHeader:
    return TraceHeader.new_root().with_parent(new_entity_id(), sampled=None)


# -- the stream ------------------------------------------------------------------------------------
@pytest.mark.req("FR-001", "FR-088", "FR-089", "FR-090", "FR-006", "FR-007", "FR-008", "FR-009", "FR-048", "SC-005",
                 "SC-020")
def test_a_stream_of_several_poll_cycles_reaches_the_client_byte_exact(
    sse: SseEnvironment, news_table: Any
) -> None:
    previous_trace = TraceHeader.new_root().root
    call = sse.open(headers={"X-SSE-Session-Id": "4b0c1c8e-0e0f-4d7e-9a43-2d6f5e3b9a11",
                             "X-SSE-Previous-Trace-Id": previous_trace, "X-SSE-Connection-Sequence": "3"},
                    upstream=upstream_header(), timeout_s=3.0)
    status, headers = call.prelude()
    assert status == 200
    assert dict(headers)["content-type"].startswith("text/event-stream")
    assert dict(headers)["x-amzn-trace-id"] == f"Root={call.invocation.trace_header.root}"
    first = [seed(news_table, "BYTE", "positive", 0.61), seed(news_table, "BYTE", "negative", -0.4)]
    second: list[dict[str, Any]] = []

    def seen(body: bytes) -> bool:
        if not second and all(expected_frame(item) in body for item in first):
            second.append(seed(news_table, "BYTE", "neutral", 0.0))  # a later poll cycle
        return False

    read_until(call, seen)
    assert call.wait() and call.error is None

    raw = b"".join(call.raw_chunks())
    prelude_end = raw.index(PRELUDE_DELIMITER)
    assert json.loads(raw[:prelude_end]) == {"statusCode": 200, "headers": dict(headers), "cookies": []}
    body = raw[prelude_end + len(PRELUDE_DELIMITER):]
    assert body == b"".join(call.chunks())
    frames = parse_frames(body)
    assert frames[0]["retry"] == "1500" and all("retry" not in frame for frame in frames[1:-1])  # FR-088
    assert [f["event"] for f in frames[:1]] == ["heartbeat"] and frames[-1]["event"] == "reconnect"
    # FR-090: the deadline came before the lifetime here; reconnect at once (FR-089: retry 0)
    assert json.loads(frames[-1]["data"]) == {"reason": "deadline", "reconnect_after_ms": 0}
    assert frames[-1]["retry"] == "0"
    ids = [f["id"] for f in frames]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)  # monotonic per stream
    ordered = sorted(first + second, key=lambda item: (item["status_changed_at"], item["item_id"]))
    assert items_of(frames, "BYTE") == [item["item_id"] for item in ordered]
    for item in ordered:
        assert body.count(expected_frame(item)) == 1
    metrics = [json.loads(f["data"]) for f in frames if f["event"] == "metrics"]
    assert metrics[-1] == {"counts": {"positive": 1, "neutral": 1, "negative": 1}}
    assert all(set(json.loads(f["data"])) == {"ts"} for f in frames if f["event"] == "heartbeat")


@pytest.mark.req("FR-001", "FR-026", "FR-027", "FR-059", "FR-060", "FR-067", "SC-023", "SC-010", "SC-005", "SC-028")
def test_stream_spans_share_the_invocation_trace_under_its_facade(
    sse: SseEnvironment, news_table: Any, trace_pipeline: TracePipeline
) -> None:
    previous_trace = TraceHeader.new_root().root
    call = sse.open(headers={"X-SSE-Session-Id": "tab-7", "X-SSE-Previous-Trace-Id": previous_trace,
                             "X-SSE-Connection-Sequence": "2"}, upstream=upstream_header())
    call.prelude()
    item = seed(news_table, "SPAN", "negative", -0.7)
    read_until(call, lambda body: False)
    assert call.error is None
    invocation = call.invocation
    root = invocation.trace_header.root
    tree = trace_pipeline.tree(root, expect_at_least=12)
    assert document_problems(tree) == []
    assert {doc["trace_id"] for doc in tree.documents} == {root}

    handler = tree.find("## lambda_handler")[0].document  # the handler phase: Powertools
    assert handler["parent_id"] == invocation.function_segment_id
    assert handler["annotations"]["route"] == "global"

    stream = tree.find("sse.global_stream")[0].document
    assert stream["parent_id"] == invocation.function_segment_id  # SC-023: under the facade
    annotations = stream["annotations"]
    assert annotations["session_id"] == "tab-7" and annotations["previous_trace_id"] == previous_trace
    assert annotations["connection_sequence"] == 2 and annotations["stream_type"] == "global"
    # FR-008: one stream per execution environment (classic Lambda: one invocation per environment)
    assert annotations["connection_id"] == invocation.request_id
    assert (annotations["current_count"], annotations["max_connections"]) == (1, 1)
    assert annotations["end_reason"] == "deadline" and annotations["resumed"] is False

    polls = tree.find("sse.poll")
    assert len(polls) >= 3 and all(p.document["parent_id"] == stream["id"] for p in polls)
    poll_annotations = {"cache_hit", "trigger", "cache_hit_rate", "cache_entry_count", "cache_max_entries",
                        "is_cold_start", "item_count", "changed_count", "poll_duration_ms", "sentiment_type"}
    for poll in polls:
        assert poll_annotations <= poll.document["annotations"].keys()
    delivering = [p for p in polls if p.document["annotations"]["changed_count"] == 1]
    assert len(delivering) == 1 and delivering[0].document["annotations"]["sentiment_type"] == "negative"
    queries = [node for poll in polls for node in poll.children if node.document["name"] == "DynamoDB"]
    assert queries, "a poll cycle queried DynamoDB"
    for query in queries:  # FR-067: a typed DynamoDB node
        assert query.document["namespace"] == "aws" and query.document["aws"]["operation"] == "Query"
        assert query.document["aws"]["table_name"] == news_table.name
    [put] = [doc for doc in tree.documents if doc["name"] == "CloudWatch"][:1]
    assert put["namespace"] == "aws" and put["aws"]["operation"] == "PutMetricData"

    dispatches = [node.document for node in tree.find("sse.dispatch")]
    [update] = [d for d in dispatches if d["annotations"]["event_type"] == "sentiment_update"]
    assert update["annotations"]["latency_ms"] >= 0 and update["annotations"]["is_clock_skew"] is False
    assert update["annotations"]["connection_count"] == 1
    assert {d["annotations"]["event_type"] for d in dispatches} == {"heartbeat", "sentiment_update", "metrics",
                                                                    "reconnect"}
    release = tree.find("sse.connection.release")[0].document
    assert release["annotations"]["current_count"] == 0 and release["parent_id"] == stream["id"]
    # every attribute of ours is indexed by the collector config: nothing but conventions in metadata
    for doc in stream_documents(tree):
        assert set(doc.get("metadata", {}).get("default", {})) <= CONVENTION_ATTRIBUTES, doc["name"]
    assert item["item_id"] in b"".join(call.chunks()).decode()


@pytest.mark.req("FR-042", "FR-006")
def test_event_latency_and_poll_duration_are_really_emitted(
    sse: SseEnvironment, news_table: Any, trace_pipeline: TracePipeline
) -> None:
    cloudwatch = trace_pipeline.client("cloudwatch")
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)

    def samples(metric: str) -> float:
        points = cloudwatch.get_metric_statistics(
            Namespace="SentimentAnalyzer", MetricName=metric, StartTime=since,
            EndTime=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1), Period=60, Statistics=["SampleCount"],
            Dimensions=[{"Name": "FunctionName", "Value": SPEC.name}])["Datapoints"]
        return sum(point["SampleCount"] for point in points)

    before = samples("EventLatencyMs"), samples("PollDurationMs")
    call = sse.open()
    call.prelude()
    seed(news_table, "METR")
    seed(news_table, "METR")
    read_until(call, lambda body: False)
    assert call.error is None
    assert samples("EventLatencyMs") - before[0] == 2
    assert samples("PollDurationMs") - before[1] >= 1


@pytest.mark.req("FR-081", "FR-007")
def test_an_item_seen_settling_is_delivered_as_it_settles_not_a_poll_interval_later(
    start_environment: Callable[..., Any], news_table: Any
) -> None:
    """Poll every 3 s, settle 0.8 s: the first poll sees the item settling and polls again for it."""
    slow = {"SSE_POLL_INTERVAL_S": "3", "SSE_INDEX_SETTLE_MS": "800", "SSE_HEARTBEAT_INTERVAL_S": "10"}
    with start_environment(slow) as environment:
        assert environment.open("/api/v2/stream/status").prelude(10)[0] == 200  # warm: the poll starts at once
        written = time.monotonic()
        item = seed(news_table, "SETTLE")
        call = environment.open(timeout_s=3.5)
        arrived: list[float] = []

        def delivered(body: bytes) -> bool:
            if not arrived and expected_frame(item) in body:
                arrived.append(time.monotonic())
            return bool(arrived)

        read_until(call, delivered)
        assert call.error is None and arrived
        assert 0.8 - 0.05 <= arrived[0] - written < 1.6  # after it settled, long before the 3 s poll


@pytest.mark.req("FR-059", "SC-026", "FR-065", "SC-027")
def test_a_warm_second_invocation_carries_its_own_trace_id(
    sse: SseEnvironment, trace_pipeline: TracePipeline
) -> None:
    first = sse.open(timeout_s=1.5)
    read_until(first, lambda body: False)
    second = sse.open(timeout_s=1.5)
    read_until(second, lambda body: False)
    first_root, second_root = first.invocation.trace_header.root, second.invocation.trace_header.root
    assert first_root != second_root
    tree = trace_pipeline.tree(second_root, expect_at_least=8)
    assert {doc["trace_id"] for doc in tree.documents} == {second_root}
    stream = tree.find("sse.global_stream")[0].document
    assert stream["parent_id"] == second.invocation.function_segment_id
    assert stream["annotations"]["is_cold_start"] is False  # the environment stayed warm
    assert document_problems(tree) == []


@pytest.mark.req("FR-056")
def test_sampled_zero_from_the_runtime_means_no_spans_and_the_stream_still_serves(
    sse: SseEnvironment, news_table: Any, collector: Collector, trace_pipeline: TracePipeline
) -> None:
    spans_before = collector.receiver.stats.spans
    upstream = TraceHeader.new_root().with_parent(new_entity_id(), sampled=False)
    call = sse.open(upstream=upstream, timeout_s=1.5)
    call.prelude()
    item = seed(news_table, "UNSAMPLED")
    body = read_until(call, lambda body: False)
    assert expected_frame(item) in body and call.error is None
    assert collector.receiver.stats.spans == spans_before
    assert trace_pipeline.documents(call.invocation.trace_header.root) == []


# -- lifetime, abandoned streams, collector failures ---------------------------------------------------
LIFETIME = {"SSE_STREAM_LIFETIME_S": "1.5"}


@pytest.mark.req("FR-085", "FR-090", "FR-055", "SC-024", "SC-031")
def test_an_abandoned_stream_is_not_told_runs_to_its_lifetime_ends_itself_and_flushes(
    start_environment: Callable[..., Any], news_table: Any, collector: Collector, trace_pipeline: TracePipeline
) -> None:
    """Lambda does not tell a streaming function its client left: the stream bounds its own life."""
    with start_environment(LIFETIME) as environment:
        call = environment.open(upstream=upstream_header(), timeout_s=10.0)
        call.prelude(10)
        item = seed(news_table, "GONE")
        read_until(call, lambda body: expected_frame(item) in body)
        call.close()  # the browser tab went away mid-stream
        assert not call.wait(0.3)  # nobody stopped the function
        assert call.wait(5) and call.error is None  # it ended itself, long before its 10 s timeout
        assert call.delivered_at is not None and call.completed_at is not None
        assert 1.5 <= call.completed_at - call.delivered_at < 4.0
        raw = b"".join(call.raw_chunks())
        final = parse_frames(raw[raw.index(PRELUDE_DELIMITER) + len(PRELUDE_DELIMITER):])[-1]
        assert final["event"] == "reconnect" and json.loads(final["data"])["reason"] == "lifetime"
        gone_root = call.invocation.trace_header.root

        following = environment.open(upstream=upstream_header(), timeout_s=1.2)
        following.prelude(10)
        # The bootstrap took the next invocation only after the abandoned stream's `finally` flushed.
        arrived = collector.sink.documents(gone_root)
        stream = next(doc for doc in arrived if doc["name"] == "sse.global_stream")
        assert stream["annotations"]["end_reason"] == "lifetime"
        assert not any("client_disconnected" in doc.get("annotations", {}) for doc in arrived)
        assert not stream.get("fault") and not stream.get("error")  # the exporter writes the flags, false included
        assert [doc["name"] for doc in arrived if doc["name"] == "sse.connection.release"] == ["sse.connection.release"]
        read_until(following, lambda body: False)
    assert following.error is None
    # SC-024: nothing of the abandoned invocation arrives later, nothing of it lands in the next trace
    assert collector.sink.documents(gone_root) == arrived
    next_tree = trace_pipeline.tree(following.invocation.trace_header.root, expect_at_least=6)
    assert {doc["trace_id"] for doc in next_tree.documents} == {following.invocation.trace_header.root}
    assert document_problems(next_tree) == []


@pytest.mark.req("FR-090", "FR-081", "FR-088", "FR-089", "SC-036")
def test_a_stream_ends_at_its_lifetime_and_a_resume_delivers_the_gap_exactly_once(
    start_environment: Callable[..., Any], news_table: Any, trace_pipeline: TracePipeline
) -> None:
    """The final `reconnect` event says: come back at once, from my id. Items written between the
    end and the resume arrive after it, once; nothing delivered before comes again."""
    with start_environment(LIFETIME) as environment:
        call = environment.open(upstream=upstream_header(), timeout_s=10.0)
        call.prelude(10)
        before = [seed(news_table, "GAP"), seed(news_table, "GAP")]
        frames = parse_frames(read_until(call, lambda body: False))  # to the stream's own end
        assert call.error is None
        final = frames[-1]
        assert final["event"] == "reconnect" and final["retry"] == "0"
        assert json.loads(final["data"]) == {"reason": "lifetime", "reconnect_after_ms": 0}
        assert frames[0]["retry"] == "1500"  # FR-088: the first frame's retry, for an unannounced close
        assert items_of(frames, "GAP") == [item["item_id"] for item in
                                          sorted(before, key=lambda i: (i["status_changed_at"], i["item_id"]))]
        gap = [seed(news_table, "GAP"), seed(news_table, "GAP")]  # written while nobody is connected

        resumed = environment.open(headers={"Last-Event-ID": final["id"]}, upstream=upstream_header(),
                                   timeout_s=10.0)
        assert resumed.prelude(10)[0] == 200
        later: list[dict[str, Any]] = []

        def more(body: bytes) -> bool:
            if not later and all(expected_frame(item) in body for item in gap):
                later.append(seed(news_table, "GAP"))
            return False

        resumed_frames = parse_frames(read_until(resumed, more))
    expected = sorted(gap + later, key=lambda item: (item["status_changed_at"], item["item_id"]))
    assert items_of(resumed_frames, "GAP") == [item["item_id"] for item in expected]  # once each, in order
    assert resumed_frames[-1]["event"] == "reconnect"
    tree = trace_pipeline.tree(resumed.invocation.trace_header.root, expect_at_least=6)
    stream = tree.find("sse.global_stream")[0].document
    assert stream["annotations"]["resumed"] is True and stream["annotations"]["end_reason"] == "lifetime"


MARKER_ONLY = {"SSE_STREAM_LIFETIME_S": "2.5", "SSE_MARKER_INTERVAL_S": "0.2", "SSE_POLL_INTERVAL_S": "120"}


@pytest.mark.req("FR-090", "FR-081", "FR-067", "FR-007", "SC-020")
def test_an_item_announced_by_the_marker_during_a_resume_gap_is_delivered_once_by_the_marker(
    start_environment: Callable[..., Any], news_table: Any, trace_pipeline: TracePipeline
) -> None:
    """The safety-net query is two minutes away: only the change marker (written as the analysis
    function writes it) can bring an item scored between two streams of this environment."""
    from lib.news.store import NewsTable

    with start_environment(MARKER_ONLY) as environment:
        first = environment.open(upstream=upstream_header(), timeout_s=10.0)
        first.prelude(10)
        frames = parse_frames(read_until(first, lambda body: False))  # to the stream's own end
        final = frames[-1]
        assert final["event"] == "reconnect"
        gap = seed(news_table, "MARKER")  # scored while nobody is connected ...
        NewsTable(news_table.name).announce_analysed(gap["status_changed_at"])  # ... and announced
        resumed = environment.open(headers={"Last-Event-ID": final["id"]}, upstream=upstream_header(),
                                   timeout_s=10.0)
        assert resumed.prelude(10)[0] == 200
        resumed_frames = parse_frames(read_until(resumed, lambda body: False))
    assert items_of(resumed_frames, "MARKER") == [gap["item_id"]]  # once
    assert expected_frame(gap) in b"".join(
        f"id: {f['id']}\nevent: {f['event']}\ndata: {f['data']}\n\n".encode() for f in resumed_frames)
    tree = trace_pipeline.tree(resumed.invocation.trace_header.root, expect_at_least=6)
    stream = tree.find("sse.global_stream")[0].document
    reads = [doc for doc in tree.documents if doc["name"] == "DynamoDB" and doc.get("origin") is None
             and doc["aws"]["operation"] == "GetItem"]
    assert len(reads) >= 5, "the marker is read every 0.2 s"
    for read in reads:  # FR-067: a typed DynamoDB node under the stream span
        assert read["namespace"] == "aws" and read["aws"]["table_name"] == news_table.name
        assert read["parent_id"] == stream["id"]
        assert set(read.get("metadata", {}).get("default", {})) <= CONVENTION_ATTRIBUTES
    triggers = [poll.document["annotations"]["trigger"] for poll in tree.find("sse.poll")]
    assert "marker_moved" in triggers and "ttl_expired" not in triggers


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _final_flush_s(call: ResponseStream) -> float:
    """From the last frame (the reconnect event) to the end of the response: the `finally`'s flush."""
    assert call.completed_at is not None
    return call.completed_at - call.chunk_times[-1]


@pytest.mark.req("FR-055", "FR-066", "SC-031")
def test_with_the_collector_down_the_stream_serves_every_event_and_the_flush_is_bounded(
    start_environment: Callable[..., Any], news_table: Any
) -> None:
    with start_environment(traces_endpoint=f"http://127.0.0.1:{_free_port()}/v1/traces") as environment:
        call = environment.open(upstream=upstream_header(), timeout_s=2.5)
        call.prelude(10)
        items = [seed(news_table, "DOWN"), seed(news_table, "DOWN")]
        body = read_until(call, lambda body: False)
    assert call.error is None
    assert all(expected_frame(item) in body for item in items)
    assert parse_frames(body)[-1]["event"] == "reconnect"
    assert _final_flush_s(call) < EXPORT_TIMEOUT_S + 1.5


@pytest.mark.req("FR-055", "SC-031")
def test_with_the_collector_hanging_the_stream_serves_every_event_and_the_flush_is_bounded(
    sse: SseEnvironment, news_table: Any, collector: Collector
) -> None:
    collector.receiver.hang.set()
    try:
        call = sse.open(upstream=upstream_header(), timeout_s=2.5)
        call.prelude()
        items = [seed(news_table, "HANG"), seed(news_table, "HANG")]
        body = read_until(call, lambda body: False)
    finally:
        collector.receiver.hang.clear()
    assert call.error is None
    assert all(expected_frame(item) in body for item in items)
    assert parse_frames(body)[-1]["event"] == "reconnect"
    assert _final_flush_s(call) < EXPORT_TIMEOUT_S + 1.5


@pytest.mark.req("FR-055", "FR-059", "SC-031")
def test_a_warm_invocation_after_a_failed_export_exports_again_lambda_resets_nothing(
    sse: SseEnvironment, collector: Collector, trace_pipeline: TracePipeline
) -> None:
    """A failed export closes the exporter's gate for its cooldown (5 s); the next invocation opens
    it again. Lambda clears nothing between warm invocations: our `invocation_context` must."""
    collector.receiver.hang.set()
    try:
        failed = sse.open(upstream=upstream_header(), timeout_s=1.5)
        read_until(failed, lambda body: False)
    finally:
        collector.receiver.hang.clear()
    assert failed.error is None
    following = sse.open(upstream=upstream_header(), timeout_s=1.5)  # well within the cooldown
    read_until(following, lambda body: False)
    assert following.error is None
    tree = trace_pipeline.tree(following.invocation.trace_header.root, expect_at_least=6)
    assert tree.find("sse.global_stream"), "the warm invocation's spans were refused by the previous one's gate"


# -- resume ---------------------------------------------------------------------------------------
@pytest.mark.req("FR-081", "SC-036")
def test_last_event_id_resumes_on_a_fresh_environment_without_duplicate_or_gap(
    sse: SseEnvironment, start_environment: Callable[..., Any], news_table: Any
) -> None:
    call = sse.open(timeout_s=2.5)
    call.prelude()
    delivered = [seed(news_table, "RESUME"), seed(news_table, "RESUME")]
    body = read_until(call, lambda body: all(expected_frame(item) in body for item in delivered))
    call.close()
    last_id = parse_frames(body)[-1]["id"]  # what the browser remembers
    missed = [seed(news_table, "RESUME"), seed(news_table, "RESUME"), seed(news_table, "RESUME")]

    with start_environment() as fresh:  # the reconnect lands on another execution environment
        assert fresh.open("/api/v2/stream/status").prelude(20)[0] == 200  # its cold start is not the stream's time
        resumed = fresh.open(headers={"Last-Event-ID": last_id}, timeout_s=3.0)
        assert resumed.prelude(10)[0] == 200
        later = []

        def more(body: bytes) -> bool:
            if not later and all(expected_frame(item) in body for item in missed):
                later.append(seed(news_table, "RESUME"))
            return False

        resumed_body = read_until(resumed, more)
    assert resumed.error is None
    frames = parse_frames(resumed_body)
    expected = sorted(missed + later, key=lambda item: (item["status_changed_at"], item["item_id"]))
    assert items_of(frames, "RESUME") == [item["item_id"] for item in expected]  # no gap, no duplicate
    assert all(frame["id"] > last_id for frame in frames)  # never at or below the given id
    assert len(items_of(frames)) == len(set(items_of(frames)))


@pytest.mark.req("FR-081", "SC-036")
def test_resuming_from_an_item_id_skips_exactly_that_item_and_those_before(
    sse: SseEnvironment, news_table: Any
) -> None:
    items = [seed(news_table, "FROMITEM") for _ in range(3)]
    items.sort(key=lambda item: (item["status_changed_at"], item["item_id"]))
    time.sleep(0.15)  # past the index settle time: readable by any poll
    since = f"{items[0]['status_changed_at']}/{items[0]['item_id']}"
    call = sse.open(headers={"Last-Event-ID": since}, timeout_s=1.5)
    frames = parse_frames(read_until(call, lambda body: False))
    assert items_of(frames, "FROMITEM") == [item["item_id"] for item in items[1:]]


# -- requests the function refuses -----------------------------------------------------------------
@pytest.mark.req("FR-048", "FR-081", "FR-018")
@pytest.mark.parametrize(("header", "value"), [
    ("X-SSE-Session-Id", "has spaces and ;"),
    ("X-SSE-Session-Id", "x" * 65),
    ("X-SSE-Previous-Trace-Id", "1-zzzzzzzz-000000000000000000000000"),
    ("X-SSE-Connection-Sequence", "0"),
    ("X-SSE-Connection-Sequence", "-3"),
    ("X-SSE-Connection-Sequence", "1e9"),
    ("Last-Event-ID", "42"),
    ("Last-Event-ID", "2026-11-25T08:00:00.123Z/not-an-item"),
    ("Last-Event-ID", "2026-11-25T08:00:00.123Z/" + "a" * 32 + "/1"),
])
def test_bad_headers_are_a_400_not_a_crash(sse: SseEnvironment, header: str, value: str) -> None:
    call = sse.open(headers={header: value}, timeout_s=2.0)
    status, headers = call.prelude()
    assert status == 400 and call.wait() and call.error is None
    assert json.loads(b"".join(call.chunks()))["error"] == "bad_request"
    assert dict(headers)["content-type"] == "application/json"


@pytest.mark.req("FR-018")
def test_unknown_routes_and_methods_are_refused(sse: SseEnvironment) -> None:
    assert sse.open("/api/v2/streams").prelude()[0] == 404
    assert sse.open("/api/v2/configurations/a%2Fb/stream").prelude()[0] == 404
    refused = sse.open(method="POST")
    assert refused.prelude()[0] == 405 and dict(refused.prelude()[1])["allow"] == "GET"


@pytest.mark.req("FR-018")
def test_a_malformed_event_fails_the_invocation_with_a_typed_error(sse: SseEnvironment) -> None:
    call = sse.runtime.invoke({"rawPath": "/api/v2/stream"}, timeout_s=2.0)
    assert call.prelude()[0] == 502
    assert call.error is not None and call.error.error_type == "MalformedEventError"
    assert sse.open(timeout_s=0.8).prelude()[0] == 200  # the environment goes on


def _seed_alert(stack_resources: Resources, ticker: str, token: str) -> str:
    alert_id = secrets.token_hex(8)
    boto3.resource("dynamodb").Table(stack_resources.tables["config"]).put_item(Item={
        "pk": "alert", "sk": alert_id, "ticker": ticker, "direction": "above", "threshold": Decimal("0.5"),
        "email": "ops@example.invalid", "created_at": "2026-01-01T00:00:00+00:00",
        "stream_token_sha256": hashlib.sha256(token.encode()).hexdigest()})
    return alert_id


@pytest.mark.req("FR-001", "FR-018")
def test_a_config_stream_needs_its_token_and_carries_only_its_ticker(
    sse: SseEnvironment, news_table: Any, stack_resources: Resources, trace_pipeline: TracePipeline
) -> None:
    token = secrets.token_urlsafe(24)
    alert_id = _seed_alert(stack_resources, "CFG", token)
    path = f"/api/v2/configurations/{alert_id}/stream"
    missing = sse.open(path)
    assert missing.prelude()[0] == 401 and dict(missing.prelude()[1])["www-authenticate"].startswith("X-Auth-Token")
    assert sse.open(path, {"X-Auth-Token": "wrong-token"}).prelude()[0] == 401
    # Behind OAC, Authorization carries CloudFront's signature: a token there is not the stream's
    assert sse.open(path, {"Authorization": f"Bearer {token}"}).prelude()[0] == 401
    unknown = sse.open("/api/v2/configurations/nosuchalert/stream", {"X-Auth-Token": token})
    assert unknown.prelude()[0] == 404

    call = sse.open(path, {"X-Auth-Token": token}, upstream=upstream_header())
    assert call.prelude()[0] == 200
    mine, other = seed(news_table, "CFG"), seed(news_table, "NOTCFG")
    frames = parse_frames(read_until(call, lambda body: False))
    assert items_of(frames) == [mine["item_id"]] and other["item_id"] not in items_of(frames)
    tree = trace_pipeline.tree(call.invocation.trace_header.root, expect_at_least=8)
    assert tree.find("sse.config_stream")[0].document["annotations"]["stream_type"] == "config"
    [authorize] = tree.find("## lambdas.sse_streaming.service.authorize")
    assert authorize.document["annotations"]["auth_outcome"] == "ok"
    assert authorize.children == []  # FR-060: the handler phase's GetItem is not patched into a subsegment


# -- several environments -----------------------------------------------------------------------
ENVIRONMENTS = 8


@pytest.mark.req("FR-001", "FR-008", "FR-025", "SC-023")
def test_concurrent_streams_run_in_as_many_environments_and_each_gets_every_event(
    start_environment: Callable[..., Any], news_table: Any, trace_pipeline: TracePipeline
) -> None:
    """Classic Lambda: N viewers are N execution environments, one stream each
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html)."""
    # Streams end by their lifetime, not a short deadline: a cold start under load costs them nothing.
    overrides = {"SSE_POLL_INTERVAL_S": "0.25", "SSE_HEARTBEAT_INTERVAL_S": "1", "SSE_STREAM_LIFETIME_S": "10"}
    with start_environment(overrides, environments=ENVIRONMENTS) as environment:
        sampled = [upstream_header() for _ in range(3)]
        unsampled = [TraceHeader.new_root().with_parent(new_entity_id(), sampled=False)
                     for _ in range(ENVIRONMENTS - 3)]
        calls = [environment.open(upstream=upstream, timeout_s=60) for upstream in sampled + unsampled]
        assert [call.prelude(60)[0] for call in calls] == [200] * ENVIRONMENTS
        items = [seed(news_table, "CROWD") for _ in range(3)]
        time.sleep(0.6)
        items += [seed(news_table, "CROWD") for _ in range(2)]
        assert all(call.wait(30) for call in calls)
    # every stream was taken before any ended: they ran side by side, one per environment
    assert max(call.delivered_at or 0.0 for call in calls) < min(call.completed_at or 0.0 for call in calls)
    expected = [item["item_id"] for item in sorted(items, key=lambda i: (i["status_changed_at"], i["item_id"]))]
    for call in calls:
        assert call.error is None
        frames = parse_frames(b"".join(call.chunks()))
        assert items_of(frames, "CROWD") == expected, [f["event"] for f in frames]
        assert frames[-1]["event"] == "reconnect"
    # Concurrent streams never mix their traces.
    for call in calls[:3]:
        root = call.invocation.trace_header.root
        tree = trace_pipeline.tree(root, expect_at_least=8)
        assert {doc["trace_id"] for doc in tree.documents} == {root}
        stream = tree.find("sse.global_stream")[0].document
        assert stream["parent_id"] == call.invocation.function_segment_id
        assert stream["annotations"]["current_count"] == 1 and stream["annotations"]["max_connections"] == 1
        assert document_problems(tree) == []


# -- failures of the function itself ------------------------------------------------------------------
@pytest.mark.req("FR-005", "FR-018", "FR-058", "FR-067", "SC-028")
def test_a_failing_poll_ends_the_stream_with_an_error_in_the_trailers(
    start_environment: Callable[..., Any], trace_pipeline: TracePipeline
) -> None:
    """Fault at the AWS boundary: the table the poll reads does not exist (moto answers 400)."""
    with start_environment({"NEWS_TABLE": "sentiment-analyzer-local-no-such-table"}) as environment:
        call = environment.open(upstream=upstream_header(), timeout_s=3.0)
        assert call.prelude(10)[0] == 200  # the stream had begun: the error can only go in the trailers
        body = read_until(call, lambda body: False)
        # the runtime took the next invocation: the failed stream ended and flushed
        assert environment.open("/api/v2/stream/status").prelude(10)[0] == 200
    assert parse_frames(body)[0]["event"] == "heartbeat"
    assert call.error is not None and call.error.error_type == "ResourceNotFoundException"
    tree = trace_pipeline.tree(call.invocation.trace_header.root, expect_at_least=6)
    [query] = [doc for doc in tree.documents if doc["name"] == "DynamoDB" and doc.get("origin") is None]
    assert query["error"] is True and not query.get("fault")  # a 400 from DynamoDB: X-Ray's "error"
    assert query["http"]["response"]["status"] == 400
    assert query["cause"]["exceptions"][0]["type"].endswith("ResourceNotFoundException")
    stream = tree.find("sse.global_stream")[0].document
    assert stream["annotations"]["end_reason"] == "error" and stream["fault"] is True
    assert len(stream["cause"]["exceptions"][0]["message"]) <= 2048
    function_segment = next(doc for doc in tree.documents if doc.get("origin") == "AWS::Lambda::Function")
    assert function_segment["fault"] is True  # the invocation failed, as Lambda records it
    assert document_problems(tree) == []


@pytest.mark.req("FR-018")
def test_a_handler_that_cannot_be_imported_is_an_init_error(start_environment: Callable[..., Any]) -> None:
    with start_environment(handler="lambdas.sse_streaming.missing.lambda_handler") as environment:
        call = environment.open(timeout_s=10)
        assert call.wait(15) and call.error is not None and call.error.error_type == "Runtime.InitError"
        assert environment.runtime.init_error is not None
        assert environment.runtime.init_error.error_type == "Runtime.ImportModuleError"
        assert environment.process.exit_code(10) == 1
