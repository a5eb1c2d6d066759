"""Benchmark 4: leaks in one SSE execution environment: threads and RSS of the runtime process after
10,000 warm invocations, against after the first one.

The process is the image's real `bootstrap` (devstack.lambda_.runtime_api) with the function's multi-
concurrency: every worker takes a first invocation, a longer stream read to its `deadline` event,
so that every code path ran once before the figures are read (first streams with the short deadline
made no DynamoDB query yet: the first one later loaded botocore's service models, ~13 MB once, and
that was counted as a leak); then 10,000 more, each a stream with a short deadline: nine in ten cut
by the client after the first frame (the disconnect path: BrokenPipeError into the generator, spans
marked, flush), one in ten read to its `deadline` event. Every invocation is sampled and exports its spans
and subsegments (to counting receivers: the environment's work is measured, not moto storing 80,000
documents).

    python benchmarks/run.py --only leaks
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import CountingSink, Row, SseFunction

INVOCATIONS = 10_000
CONCURRENCY = 8
READ_TO_END_EVERY = 10
WARM_PART = 1_000  # the first thousand: code paths, pools and caches warming up
STREAM_TIMEOUT_S = 0.4
FIRST_STREAM_TIMEOUT_S = 2.0  # long enough for several poll cycles on a cold environment
SETTLE_S = 2.5  # > the span processor's 1 s schedule: what is queued has been exported
TARGET_THREADS = 0
TARGET_RSS_MB = 2.0
OVERRIDES = {"SSE_POLL_INTERVAL_S": "0.1", "SSE_HEARTBEAT_INTERVAL_S": "0.1", "SSE_DEADLINE_MARGIN_S": "0.1",
             "SSE_INDEX_SETTLE_MS": "0", "AWS_LAMBDA_MAX_CONCURRENCY": str(CONCURRENCY),
             "SSE_MAX_CONNECTIONS": str(CONCURRENCY * 2)}


def _invoke(sse: SseFunction, read_to_end: bool, timeout_s: float = STREAM_TIMEOUT_S) -> bool:
    call = sse.open(timeout_s=timeout_s)
    status, _ = call.prelude(30)
    if read_to_end:
        for _ in call.chunks():
            pass
    else:
        next(iter(call.chunks()), None)
    call.close()
    call.wait(10)
    return status == 200 and (call.error is None or call.disconnected)


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
        with SseFunction(moto.endpoint, resources, daemon.address, receiver.endpoint, OVERRIDES) as sse, \
                ThreadPoolExecutor(CONCURRENCY) as pool:
            first = pool.map(lambda _: _invoke(sse, True, FIRST_STREAM_TIMEOUT_S), range(CONCURRENCY))
            assert all(first), list(sse.process.output)
            threads_first, rss_first = _figures(sse)
            started = time.monotonic()
            results: list[Any] = list(pool.map(lambda i: _invoke(sse, i % READ_TO_END_EVERY == 0), range(WARM_PART)))
            _, rss_warm = _figures(sse)
            results += list(pool.map(lambda i: _invoke(sse, i % READ_TO_END_EVERY == 0),
                                     range(WARM_PART, INVOCATIONS)))
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
        Row("4 leaks", f"SSE: {INVOCATIONS} warm invocations ({CONCURRENCY} concurrent, 9/10 cut by the client) "
            f"in {elapsed:.0f} s; failed", str(failed), "0", failed == 0),
        Row("4 leaks", "SSE: threads after 10,000 vs after the first (per worker)",
            f"{threads_after} vs {threads_first} ({threads:+d})", f"{TARGET_THREADS:+d}", threads <= TARGET_THREADS),
        Row("4 leaks", "SSE: RSS after 10,000 vs after the first",
            f"{rss_after:.1f} vs {rss_first:.1f} MB ({rss:+.1f} MB)", f"<= {TARGET_RSS_MB} MB", rss <= TARGET_RSS_MB),
        Row("4 leaks", f"SSE: RSS growth per 1,000 invocations after the first {WARM_PART:,} (the steady slope)",
            f"{(rss_after - rss_warm) * 1000 / (INVOCATIONS - WARM_PART):+.2f} MB", "-", None),
        Row("4 leaks", "SSE: documents exported meanwhile (spans + subsegments)", f"{sink.documents}"
            f" ({exported.spans} spans received)", "-", None),
    ]
