"""SSE under random cuts: a long stream of new items, the client's connection cut 20 times at random
points (mid-frame included), each time reconnecting with the last complete frame's id as
`Last-Event-ID`, as the browser client does. Every item arrives exactly once, in order (FR-081).

The cut points come from a seeded generator; the producer's timing is real, so where the cuts
fall relative to the items varies from run to run, which is the point.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.xray.pipeline import TracePipeline
from tests.integration.test_sse_stream import SseEnvironment, items_of, parse_frames, seed

CUTS = 20
TICKER = "CUTS"
PRODUCE_EVERY_S = 0.05


@pytest.fixture
def sse(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources) -> Iterator[SseEnvironment]:
    environment = SseEnvironment(trace_pipeline, moto_server, stack_resources, trace_pipeline.receiver.endpoint,
                                 {"SSE_POLL_INTERVAL_S": "0.1", "SSE_HEARTBEAT_INTERVAL_S": "0.3",
                                  "SSE_DEADLINE_MARGIN_S": "0.4", "SSE_INDEX_SETTLE_MS": "100",
                                  "AWS_LAMBDA_MAX_CONCURRENCY": "4"}).start()
    assert environment.open("/api/v2/stream/status").prelude(20)[0] == 200
    yield environment
    environment.stop()


class Producer:
    """Analysed items appearing one after another, as the analysis Lambda leaves them."""

    def __init__(self, table: Any):
        self.table = table
        self.items: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cut-producer", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(PRODUCE_EVERY_S):
            self.items.append(seed(self.table, TICKER))

    def __enter__(self) -> Producer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def expected(self) -> list[str]:
        return [item["item_id"] for item in sorted(self.items, key=lambda i: (i["status_changed_at"], i["item_id"]))]


def complete_frames(body: bytes) -> list[dict[str, str]]:
    """The frames a client has fully received (a cut may leave half of the next one behind)."""
    complete, _, _ = body.rpartition(b"\n\n")
    return parse_frames(complete + b"\n\n") if complete else []


def read_and_cut(sse: SseEnvironment, last_id: str | None, cut_after_bytes: int) -> tuple[bytes, Any]:
    """One connection: read until `cut_after_bytes` body bytes arrived (or the stream ended), then hang up."""
    headers = {"Last-Event-ID": last_id} if last_id else None
    call = sse.open(headers=headers, timeout_s=4.0)
    assert call.prelude(10)[0] == 200, call.error
    body = b""
    for chunk in call.chunks():
        body += chunk
        if len(body) >= cut_after_bytes:
            break
    call.close()
    return body[:cut_after_bytes], call


@pytest.mark.req("FR-081", "SC-036", "FR-033", "FR-085")
def test_twenty_random_cuts_lose_and_duplicate_nothing(sse: SseEnvironment, stack_resources: Resources) -> None:
    table = boto3.resource("dynamodb").Table(stack_resources.tables["news"])
    cutter = random.Random(20261125)
    received: list[str] = []
    last_id: str | None = None
    with Producer(table) as producer:
        for _ in range(CUTS):
            # Somewhere in the first few frames: often mid-frame, sometimes inside the very first one.
            body, _ = read_and_cut(sse, last_id, cutter.randint(20, 1200))
            frames = complete_frames(body)
            received += items_of(frames, TICKER)
            if frames:
                last_id = frames[-1]["id"]
            time.sleep(cutter.uniform(0.05, 0.2))  # the client's reconnect delay
    # The producer stopped: one last connection picks up whatever is left.
    expected = producer.expected()
    call = sse.open(headers={"Last-Event-ID": last_id} if last_id else None, timeout_s=5.0)
    assert call.prelude(10)[0] == 200
    body = b""
    for chunk in call.chunks():
        body += chunk
        if set(expected) <= set(received + items_of(complete_frames(body), TICKER)):
            break
    call.close()
    received += items_of(complete_frames(body), TICKER)

    assert len(expected) >= 2 * CUTS  # a long stream: the cuts fell among many items
    duplicates = sorted({item for item in received if received.count(item) > 1})
    assert duplicates == []
    # The first connection starts at its own "now": items before it are not part of this stream.
    first = expected.index(received[0])
    assert received == expected[first:], (len(received), len(expected) - first)
    assert first <= 2
