"""Benchmark 3: end-of-stream flush, p50/p99 with the collector up (64 spans), worst case down / hanging,
ours (lib.tracing.otel) against the stock OTLP exporter settings."""

from __future__ import annotations

import os
import socket
import time

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from benchmarks.common import Row, percentile
from devstack.xray.pipeline import TracePipeline
from lib.tracing import otel

SPANS = 64
ROUNDS = 200


def _flush_times(provider: TracerProvider, rounds: int) -> list[float]:
    tracer = provider.get_tracer("bench")
    times = []
    for _ in range(rounds):
        for index in range(SPANS):
            tracer.start_span(f"span-{index}").end()
        started = time.perf_counter()
        provider.force_flush()
        times.append(time.perf_counter() - started)
    return times


def _closed_port_endpoint() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1/traces"


def _stock_provider(endpoint: str) -> TracerProvider:
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    return provider


def run() -> list[Row]:
    os.environ.setdefault("OTEL_SERVICE_NAME", "bench")
    os.environ["POWERTOOLS_SERVICE_NAME"] = os.environ["OTEL_SERVICE_NAME"]
    rows = []
    with TracePipeline() as pipeline:
        provider, _ = otel.build_provider(pipeline.receiver.endpoint)
        up = _flush_times(provider, ROUNDS)
        provider.shutdown()
        rows.append(Row("3 flush", f"collector up, {SPANS} spans: p50 / p99",
                        f"{percentile(up, .5) * 1000:.1f} / {percentile(up, .99) * 1000:.1f} ms", "p99 <= 20 ms",
                        percentile(up, .99) <= 0.020))
        pipeline.receiver.hang.set()
        provider, _ = otel.build_provider(pipeline.receiver.endpoint)
        hanging = max(_flush_times(provider, 3))
        pipeline.receiver.hang.clear()
        provider.shutdown()
    down_endpoint = _closed_port_endpoint()
    provider, _ = otel.build_provider(down_endpoint)
    down = max(_flush_times(provider, 3))
    provider.shutdown()
    stock = _stock_provider(down_endpoint)
    stock_down = max(_flush_times(stock, 1))
    rows.append(Row("3 flush", "collector down: worst (ours vs stock exporter)",
                    f"{down * 1000:.0f} ms vs {stock_down * 1000:.0f} ms (x{stock_down / down:.0f})", "<= 1 s",
                    down <= 1.0))
    rows.append(Row("3 flush", "collector hanging: worst", f"{hanging * 1000:.0f} ms", "<= 1 s", hanging <= 1.0))
    return rows
