"""SSE under random cuts: a long stream of new items, the client's connection cut 20 times at random
points (mid-frame included), each time reconnecting with the last complete frame's id as
`Last-Event-ID`, as the browser client does. Every item arrives exactly once, in order (FR-081).

As in Lambda, a cut is not told to the function: each abandoned stream runs on to its lifetime
(FR-090) in its own execution environment, so the function has several environments (processes).

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
ENVIRONMENTS = 6  # abandoned streams live 1 s; a cut comes every 0.1-0.3 s plus the reading


@pytest.fixture
def sse(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources) -> Iterator[SseEnvironment]:
    environment = SseEnvironment(trace_pipeline, moto_server, stack_resources, trace_pipeline.receiver.endpoint,
                                 {"SSE_POLL_INTERVAL_S": "0.1", "SSE_HEARTBEAT_INTERVAL_S": "0.3",
                                  "SSE_DEADLINE_MARGIN_S": "0.4", "SSE_INDEX_SETTLE_MS": "100",
                                  "SSE_STREAM_LIFETIME_S": "1"}, environments=ENVIRONMENTS).start().warm_up()
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

    def expected(self, after: tuple[str, ...]) -> list[str]:
        """Item ids in stream order, past the position `after` = (status_changed_at, item_id or "")."""
        ordered = sorted(self.items, key=lambda i: (i["status_changed_at"], i["item_id"]))
        return [item["item_id"] for item in ordered if (item["status_changed_at"], item["item_id"]) > after]


def complete_frames(body: bytes) -> list[dict[str, str]]:
    """The frames a client has fully received (a cut may leave half of the next one behind)."""
    complete, _, _ = body.rpartition(b"\n\n")
    return parse_frames(complete + b"\n\n") if complete else []


def read_and_cut(sse: SseEnvironment, last_id: str | None, cut_after_bytes: int) -> tuple[bytes, Any]:
    """One connection: read until `cut_after_bytes` body bytes arrived (or the stream ended), then hang up."""
    headers = {"Last-Event-ID": last_id} if last_id else None
    call = sse.open(headers=headers, timeout_s=30.0)
    assert call.prelude(30)[0] == 200, call.error
    body = b""
    for chunk in call.chunks():
        body += chunk
        if len(body) >= cut_after_bytes:
            break
    call.close()
    return body[:cut_after_bytes], call


@pytest.mark.req("FR-081", "SC-036", "FR-033", "FR-085", "FR-090")
def test_twenty_random_cuts_lose_and_duplicate_nothing(sse: SseEnvironment, stack_resources: Resources) -> None:
    table = boto3.resource("dynamodb").Table(stack_resources.tables["news"])
    cutter = random.Random(20261125)
    received: list[str] = []
    last_id: str | None = None
    start: tuple[str, ...] = ()
    with Producer(table) as producer:
        for _ in range(CUTS):
            # Somewhere in the first few frames: often mid-frame, sometimes inside the very first one.
            body, _ = read_and_cut(sse, last_id, cutter.randint(20, 1200))
            frames = complete_frames(body)
            received += items_of(frames, TICKER)
            if frames and last_id is None:  # a connection without Last-Event-ID starts at its own "now"
                start = tuple(frames[0]["id"].split("/")[:2])  # its first frame's id: <ts>/<item>/<seq>
            if frames:
                last_id = frames[-1]["id"]
            time.sleep(cutter.uniform(0.05, 0.2))  # the client's reconnect delay
    # The producer stopped: the client picks up whatever is left, reconnecting as each stream ends.
    expected = producer.expected(after=start)
    for _ in range(10):
        if set(expected) <= set(received):
            break
        call = sse.open(headers={"Last-Event-ID": last_id} if last_id else None, timeout_s=30.0)
        assert call.prelude(30)[0] == 200
        body = b""
        for chunk in call.chunks():
            body += chunk
            if set(expected) <= set(received + items_of(complete_frames(body), TICKER)):
                break
        call.close()
        frames = complete_frames(body)
        received += items_of(frames, TICKER)
        if frames:
            last_id = frames[-1]["id"]

    assert len(expected) >= 2 * CUTS  # a long stream: the cuts fell among many items
    duplicates = sorted({item for item in received if received.count(item) > 1})
    assert duplicates == []
    # Everything after where the first connection started, once each, in order.
    assert received == expected, (len(received), len(expected))
