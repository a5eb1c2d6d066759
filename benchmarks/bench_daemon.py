"""Benchmark 6: the local X-Ray daemon, segments received and stored vs sent at 500/2,000/5,000 per second."""

from __future__ import annotations

import json
import socket
import time

from benchmarks.common import Row
from devstack.xray.pipeline import TracePipeline
from lib.tracing.header import new_entity_id, new_trace_id

HEADER = b'{"format":"json","version":1}\n'
SECONDS = 2


def _payloads(count: int) -> tuple[str, list[bytes]]:
    trace_id = new_trace_id()
    now = time.time()
    docs = [{"name": f"s{i}", "id": new_entity_id(), "trace_id": trace_id, "start_time": now, "end_time": now,
             "type": "subsegment", "parent_id": "0" * 16, "annotations": {"i": i}} for i in range(count)]
    return trace_id, [HEADER + json.dumps(doc).encode() for doc in docs]


def run() -> list[Row]:
    rows = []
    with TracePipeline() as pipeline:
        for rate in (500, 2000, 5000):
            _, payloads = _payloads(rate * SECONDS)
            received_before = pipeline.daemon.stats.datagrams
            stored_before = pipeline.sink.stats.stored
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                started = time.monotonic()
                for index, payload in enumerate(payloads):
                    udp.sendto(payload, ("127.0.0.1", pipeline.daemon.port))
                    if index % 50 == 49:
                        time.sleep(max(0.0, started + (index + 1) / rate - time.monotonic()))
            pipeline.settle(60)
            received = pipeline.daemon.stats.datagrams - received_before
            stored = pipeline.sink.stats.stored - stored_before
            lost = len(payloads) - stored
            target = "0 lost" if rate == 2000 else "-"
            rows.append(Row("6 daemon", f"{rate}/s for {SECONDS} s: sent / received / stored",
                            f"{len(payloads)} / {received} / {stored} (lost {lost})", target,
                            lost == 0 if rate == 2000 else None))
    return rows
