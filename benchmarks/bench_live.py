"""Benchmark 5: live latency, a DynamoDB write to the event in an SSE client's hands, and 100 streams.

The SSE function runs as in its image: the real `bootstrap` against the local Runtime API, polling
moto with the stack map's settings (SSE_POLL_INTERVAL_S, and the index settle delay the function
waits so a late GSI entry is never skipped). A writer stores analysed items at random moments, as
the analysis Lambda does; latency = event frame received - `put_item` acknowledged.

1. one stream, 60 items: p50 / p95 against the poll interval (target p95 <= interval + 100 ms);
2. 100 concurrent streams (the function's connection limit, multi-concurrency 100), 10 items:
   each stream gets every item exactly once, in order; p50 / p95 over all deliveries.

    python benchmarks/run.py --only live
"""

from __future__ import annotations

import json
import os
import random
import secrets
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from benchmarks.common import CountingSink, Row, SseFunction, percentile

SINGLE_ITEMS = 60
CROWD_STREAMS = 100
CROWD_ITEMS = 10
TARGET_MARGIN_S = 0.1


@dataclass
class Client:
    """One SSE client: the time each `sentiment_update` frame arrived, by item id."""

    ticker: str
    received: dict[str, float] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    duplicates: int = 0

    def read(self, call: Any) -> None:
        buffer = b""
        for chunk in call.chunks():
            now = time.monotonic()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                fields = dict(line.split(": ", 1) for line in frame.decode().split("\n") if ": " in line)
                if fields.get("event") != "sentiment_update":
                    continue
                data = json.loads(fields["data"])
                if data["ticker"] != self.ticker:
                    continue
                if data["item_id"] in self.received:
                    self.duplicates += 1
                    continue
                self.received[data["item_id"]] = now
                self.order.append(data["item_id"])


class Writer:
    """Analysed items stored at random moments; remembers when each write was acknowledged."""

    def __init__(self, table: Any, ticker: str, seed: int):
        self.table, self.ticker = table, ticker
        self.random = random.Random(seed)
        self.written: dict[str, float] = {}
        self.order: list[str] = []

    def write(self) -> None:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        item_id = secrets.token_hex(16)
        self.table.put_item(Item={
            "item_id": item_id, "published_at": stamp, "ticker": self.ticker, "headline": f"{self.ticker} moves",
            "summary": "", "source": "tiingo", "url": "https://news.example.com/live", "status": "analyzed",
            "status_changed_at": stamp, "ingested_at": stamp, "analyzed_at": stamp, "sentiment_label": "positive",
            "sentiment_score": Decimal("0.5"), "expires_at": int(now) + 3600})
        self.written[item_id] = time.monotonic()
        self.order.append(item_id)

    def run(self, count: int, low_s: float, high_s: float) -> None:
        for _ in range(count):
            time.sleep(self.random.uniform(low_s, high_s))
            self.write()


def _stream(sse: SseFunction, client: Client, timeout_s: float) -> tuple[threading.Thread, Any]:
    call = sse.open(timeout_s=timeout_s)
    status, _ = call.prelude(60)
    if status != 200:
        raise RuntimeError(f"stream refused: {status} {call.error}")
    reader = threading.Thread(target=client.read, args=(call,), daemon=True)
    reader.start()
    return reader, call


def _latencies(writer: Writer, clients: list[Client]) -> list[float]:
    return [client.received[item] - writer.written[item] for client in clients for item in writer.written
            if item in client.received]


def run() -> list[Row]:
    import boto3

    from devstack.aws.moto_server import MotoServer
    from devstack.aws.resources import create_resources
    from devstack.stack import load_stack
    from devstack.xray.daemon import XRayDaemon
    from devstack.xray.otlp_receiver import OtlpReceiver

    spec_env = load_stack().function("sse_streaming").env
    poll_s = float(spec_env["SSE_POLL_INTERVAL_S"])
    moto = MotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
    boto3.setup_default_session()
    resources = create_resources(load_stack())
    table = boto3.resource("dynamodb").Table(resources.tables["news"])
    sink = CountingSink()
    daemon = XRayDaemon(sink).start()  # type: ignore[arg-type]
    receiver = OtlpReceiver(sink).start()  # type: ignore[arg-type]
    rows = []
    try:
        # 1. one stream, the stack's settings.
        with SseFunction(moto.endpoint, resources, daemon.address, receiver.endpoint) as sse:
            assert sse.open("/api/v2/stream/status").prelude(30)[0] == 200
            client, writer = Client("LIVE1"), Writer(table, "LIVE1", seed=5)
            reader, call = _stream(sse, client, timeout_s=SINGLE_ITEMS * 0.5 + 4 * poll_s + 10)
            writer.run(SINGLE_ITEMS, 0.1, 0.8)
            _wait_for(lambda: len(client.received) == SINGLE_ITEMS, 4 * poll_s + 5)
            call.close()
            reader.join(5)
        single = _latencies(writer, [client])
        p50, p95 = percentile(single, .5), percentile(single, .95)
        rows.append(Row("5 live", f"write -> event, 1 stream, {len(single)}/{SINGLE_ITEMS} events, poll {poll_s:g} s: "
                        "p50 / p95", f"{p50 * 1000:.0f} / {p95 * 1000:.0f} ms",
                        f"p95 <= {(poll_s + TARGET_MARGIN_S) * 1000:.0f} ms", p95 <= poll_s + TARGET_MARGIN_S))
        rows.append(Row("5 live", "1 stream: events lost / duplicated / out of order",
                        f"{SINGLE_ITEMS - len(client.received)} / {client.duplicates} / "
                        f"{int(client.order != writer.order[:len(client.order)])}", "0 / 0 / 0",
                        len(client.received) == SINGLE_ITEMS and client.duplicates == 0
                        and client.order == writer.order))

        # 2. a hundred concurrent streams on one execution environment.
        crowd_env = {"AWS_LAMBDA_MAX_CONCURRENCY": str(CROWD_STREAMS), "SSE_MAX_CONNECTIONS": str(CROWD_STREAMS)}
        with SseFunction(moto.endpoint, resources, daemon.address, receiver.endpoint, crowd_env) as sse:
            assert sse.open("/api/v2/stream/status").prelude(30)[0] == 200
            clients = [Client("CROWD") for _ in range(CROWD_STREAMS)]
            streams = [_stream(sse, client, timeout_s=CROWD_ITEMS * 0.6 + 4 * poll_s + 20) for client in clients]
            writer = Writer(table, "CROWD", seed=7)
            writer.run(CROWD_ITEMS, 0.2, 0.8)
            _wait_for(lambda: all(len(c.received) == CROWD_ITEMS for c in clients), 4 * poll_s + 15)
            for reader, call in streams:
                call.close()
                reader.join(5)
        complete = sum(1 for c in clients if c.order == writer.order and c.duplicates == 0)
        crowd = _latencies(writer, clients)
        rows.append(Row("5 live", f"{CROWD_STREAMS} concurrent streams, {CROWD_ITEMS} events: streams that got every "
                        "event once, in order", f"{complete} / {CROWD_STREAMS}", f"{CROWD_STREAMS}",
                        complete == CROWD_STREAMS))
        rows.append(Row("5 live", f"{CROWD_STREAMS} streams: write -> event over {len(crowd)} deliveries, p50 / p95",
                        f"{percentile(crowd, .5) * 1000:.0f} / {percentile(crowd, .95) * 1000:.0f} ms",
                        f"p95 <= {(poll_s + TARGET_MARGIN_S) * 1000:.0f} ms",
                        percentile(crowd, .95) <= poll_s + TARGET_MARGIN_S))
    finally:
        receiver.stop()
        daemon.stop()
        moto.stop()
    return rows


def _wait_for(done: Any, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        time.sleep(0.05)
