"""Benchmark 4: leaks in one SSE execution environment: threads and RSS of the runtime process after
many warm invocations, against after the first one.

The process is the image's real `bootstrap` (devstack.lambda_.runtime_api) serving one invocation at
a time, as classic Lambda runs an environment. Lambda never tells a streaming function that its
client went away (FR-085), so there is no disconnect path to exercise: every stream ends itself,
here at its invocation deadline (a short timeout, `SSE_DEADLINE_MARGIN_S` before it), with its
final `reconnect` event, exactly as a stream at `SSE_STREAM_LIFETIME_S` does. The first invocation
is a longer stream that polls several times (every code path, botocore's service models loaded
once), then the figures are read; then `INVOCATIONS` more, each a short stream read to its end.
Every invocation is sampled and exports its spans and subsegments (to counting receivers: the
environment's work is measured, not moto storing the documents).

    python benchmarks/run.py --only leaks
"""

from __future__ import annotations

import os
import time
from typing import Any

from benchmarks.common import CountingSink, Row, SseFunction

INVOCATIONS = 1_000  # one at a time, each a whole (short) stream: a bounded run time on a shared machine
WARM_PART = 200  # the first ones: code paths, pools and caches warming up
STREAM_TIMEOUT_S = 0.3
FIRST_STREAM_TIMEOUT_S = 2.0  # long enough for several poll cycles on a cold environment
SETTLE_S = 2.5  # > the span processor's 1 s schedule: what is queued has been exported
TARGET_THREADS = 0
TARGET_RSS_MB = 2.0
OVERRIDES = {"SSE_POLL_INTERVAL_S": "0.1", "SSE_MARKER_INTERVAL_S": "0.05", "SSE_HEARTBEAT_INTERVAL_S": "0.1",
             "SSE_DEADLINE_MARGIN_S": "0.1", "SSE_INDEX_SETTLE_MS": "0"}


def _invoke(sse: SseFunction, timeout_s: float = STREAM_TIMEOUT_S) -> bool:
    """One stream, read to its own end (its final `reconnect` event)."""
    call = sse.open(timeout_s=timeout_s)
    status, _ = call.prelude(30)
    body = b"".join(call.chunks())
    call.wait(10)
    return status == 200 and call.error is None and b"event: reconnect" in body


def _figures(sse: SseFunction) -> tuple[int, float]:
    time.sleep(SETTLE_S)
    return sse.proc_status("Threads"), sse.proc_status("VmRSS") / 1024


def run() -> list[Row]:
    import boto3

    from devstack.aws.moto_server import MotoServer
    from devstack.aws.resources import create_resources
    from devstack.stack import load_stack
    from devstack.xray.daemon import XRayDaemon
    from devstack.xray.otlp_receiver import OtlpReceiver

    moto = MotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
    boto3.setup_default_session()
    resources = create_resources(load_stack())
    sink = CountingSink()
    daemon = XRayDaemon(sink).start()  # type: ignore[arg-type]
    receiver = OtlpReceiver(sink).start()  # type: ignore[arg-type]
    try:
        with SseFunction(moto.endpoint, resources, daemon.address, receiver.endpoint, OVERRIDES) as sse:
            assert sse.open("/api/v2/stream/status", timeout_s=60).prelude(120)[0] == 200  # the cold start
            assert _invoke(sse, FIRST_STREAM_TIMEOUT_S), list(sse.process.output)
            threads_first, rss_first = _figures(sse)
            started = time.monotonic()
            results: list[Any] = [_invoke(sse) for _ in range(WARM_PART)]
            _, rss_warm = _figures(sse)
            results += [_invoke(sse) for _ in range(WARM_PART, INVOCATIONS)]
            elapsed = time.monotonic() - started
            threads_after, rss_after = _figures(sse)
            exported = receiver.stats
    finally:
        receiver.stop()
        daemon.stop()
        moto.stop()
    failed = sum(1 for ok in results if not ok)
    threads, rss = threads_after - threads_first, rss_after - rss_first
    return [
        Row("4 leaks", f"SSE: {INVOCATIONS} warm invocations (one environment, one at a time, each a whole stream "
            f"to its `reconnect`) in {elapsed:.0f} s; failed", str(failed), "0", failed == 0),
        Row("4 leaks", f"SSE: threads after {INVOCATIONS:,} vs after the first",
            f"{threads_after} vs {threads_first} ({threads:+d})", f"{TARGET_THREADS:+d}", threads <= TARGET_THREADS),
        Row("4 leaks", f"SSE: RSS after {INVOCATIONS:,} vs after the first",
            f"{rss_after:.1f} vs {rss_first:.1f} MB ({rss:+.1f} MB)", f"<= {TARGET_RSS_MB} MB", rss <= TARGET_RSS_MB),
        Row("4 leaks", f"SSE: RSS growth after the first {WARM_PART:,} invocations (the steady slope)",
            f"{(rss_after - rss_warm) * 1000 / (INVOCATIONS - WARM_PART):+.2f} MB per 1,000", "-", None),
        Row("4 leaks", "SSE: documents exported meanwhile (spans + subsegments)", f"{sink.documents}"
            f" ({exported.spans} spans received)", "-", None),
    ]
