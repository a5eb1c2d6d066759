"""The devstack edge's CloudFront Function: one long-lived node process vs a node process per request.

Why the edge keeps one process: the deployed `strip_sampling.js` runs on every API and SSE request.
`python -m benchmarks.run --only cloudfront_function` prints the median and p95 per call of both ways.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time

from benchmarks.common import Row, median, percentile
from devstack.edge.cloudfront_function import RUNNER_JS, STRIP_SAMPLING_JS, CloudFrontFunction

HEADERS = [("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"),
           ("Accept", "text/event-stream")]
CALLS = 300
SPAWNS = 20


def _per_request_spawn(node: str) -> float:
    event = {"version": "1.0", "context": {"eventType": "viewer-request"}, "viewer": {"ip": "127.0.0.1"},
             "request": {"method": "GET", "uri": "/api/v2/stream", "querystring": {}, "cookies": {},
                         "headers": {name.lower(): {"value": value} for name, value in HEADERS}}}
    started = time.perf_counter()
    subprocess.run([node, str(RUNNER_JS), str(STRIP_SAMPLING_JS)], input=json.dumps(event) + "\n", text=True,
                   capture_output=True, check=True)
    return (time.perf_counter() - started) * 1000


def run() -> list[Row]:
    node = shutil.which("node")
    assert node is not None, "node is needed"
    long_lived = []
    with CloudFrontFunction() as function:
        function.viewer_request("GET", "/api/v2/stream", "", HEADERS)  # warm
        for _ in range(CALLS):
            started = time.perf_counter()
            function.viewer_request("GET", "/api/v2/stream", "", HEADERS)
            long_lived.append((time.perf_counter() - started) * 1000)
    spawned = [_per_request_spawn(node) for _ in range(SPAWNS)]
    return [
        Row("cloudfront_function", "long-lived node, ms per request (median / p95)",
            f"{median(long_lived):.2f} / {percentile(long_lived, 0.95):.2f}", "-", None),
        Row("cloudfront_function", "node per request, ms per request (median / p95)",
            f"{median(spawned):.1f} / {percentile(spawned, 0.95):.1f}", "-", None),
    ]
