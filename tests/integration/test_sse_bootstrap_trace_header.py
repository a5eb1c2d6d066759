"""How the SSE image's `docker/sse/bootstrap` gives each invocation its `_X_AMZN_TRACE_ID`.

The bootstrap writes the header into os.environ's mapping without a C-level setenv(): glibc keeps
every string ever given to setenv(), so one per invocation grew the environment's memory without
bound (benchmark 4). These tests run the real bootstrap and check that every Python reader of the
header (os.environ, os.getenv, the X-Ray SDK's Lambda context, the Powertools Logger, the OTel
Lambda propagator) sees each warm invocation's own header, that the C-level environment never
holds one, and that a new header per invocation costs the heap nothing.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.lambda_.events import function_url_event
from devstack.lambda_.process import RuntimeProcess
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.stack import REPO_ROOT, SRC_ROOT, load_stack
from lib.tracing.header import TraceHeader, new_entity_id

BOOTSTRAP = REPO_ROOT / "docker" / "sse" / "bootstrap"
TRACE_ENV = "_X_AMZN_TRACE_ID"
STALE_HEADER = "Root=1-00000000-000000000000000000000000;Parent=0000000000000000;Sampled=1"

# A handler that reports the header as each kind of reader in the function sees it.
PROBE_HANDLER = '''
import ctypes
import os

from aws_xray_sdk.core.lambda_launcher import LambdaContext
from opentelemetry import trace
from opentelemetry.propagators.aws import AwsXRayLambdaPropagator

from lib.tracing.powertools import lambda_logger

libc = ctypes.CDLL(None)
libc.getenv.restype = ctypes.c_char_p
logger = lambda_logger()


def handler(event, context):
    c_value = libc.getenv(b"_X_AMZN_TRACE_ID")
    facade = LambdaContext().get_trace_entity()
    span = trace.get_current_span(AwsXRayLambdaPropagator().extract({})).get_span_context()
    logger.info("probe", extra={"request_id": context.aws_request_id})
    return {
        "os_environ": os.environ.get("_X_AMZN_TRACE_ID"),
        "os_getenv": os.getenv("_X_AMZN_TRACE_ID"),
        "c_getenv": None if c_value is None else c_value.decode(),
        "xray_sdk": [facade.trace_id, facade.id],
        "otel": [f"{span.trace_id:032x}", f"{span.span_id:016x}"],
    }
'''

# Run in a process of its own (no other thread allocating meanwhile): glibc's bytes in use
# (mallinfo2) after N distinct headers through the bootstrap, then through os.environ[...] = ...
HEAP_PROBE = '''
import ctypes, importlib.machinery, importlib.util, json, os, sys

loader = importlib.machinery.SourceFileLoader("sse_bootstrap", sys.argv[1])
bootstrap = importlib.util.module_from_spec(importlib.util.spec_from_loader("sse_bootstrap", loader))
loader.exec_module(bootstrap)


class MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


mallinfo2 = ctypes.CDLL(None).mallinfo2
mallinfo2.restype = MallInfo2


def header(n):
    return f"Root=1-{n:08x}-{n:024x};Parent={n:016x};Sampled=1"


def bytes_per_header(assign, first, count):
    for n in range(first, first + 100):  # warm-up: whatever a first call allocates once
        assign(header(n))
    before = mallinfo2().uordblks
    for n in range(first + 100, first + 100 + count):
        assign(header(n))
    return (mallinfo2().uordblks - before) / count


def setenv(value):
    os.environ["_X_AMZN_TRACE_ID"] = value


bootstrap_cost = bytes_per_header(bootstrap.set_trace_header, 0, int(sys.argv[2]))
seen = os.getenv("_X_AMZN_TRACE_ID")
setenv_cost = bytes_per_header(setenv, 10**6, int(sys.argv[3]))
print(json.dumps({"bootstrap": bootstrap_cost, "seen": seen, "setenv": setenv_cost}))
'''


@pytest.fixture
def probe_environment(tmp_path: Path) -> Iterator[tuple[RuntimeApi, RuntimeProcess]]:
    """The real bootstrap running PROBE_HANDLER (the image command), started with a stale header in its environment."""
    (tmp_path / "probe.py").write_text(PROBE_HANDLER)
    daemon = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)  # the Lambda service's segments land here
    daemon.bind(("127.0.0.1", 0))
    daemon_address = "{}:{}".format(*daemon.getsockname())
    runtime = RuntimeApi(load_stack().function("sse_streaming"), daemon_address).start()
    environment = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC_ROOT),
        "LAMBDA_TASK_ROOT": str(tmp_path),
        "AWS_LAMBDA_FUNCTION_NAME": "probe", "POWERTOOLS_SERVICE_NAME": "probe",
        "AWS_XRAY_DAEMON_ADDRESS": daemon_address, "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        TRACE_ENV: STALE_HEADER,
    }
    process = RuntimeProcess(runtime, [sys.executable, str(BOOTSTRAP), "probe.handler"], environment).start()
    try:
        yield runtime, process
    finally:
        process.stop()
        runtime.stop()
        daemon.close()


def _log_lines(process: RuntimeProcess, request_id: str, timeout_s: float = 5.0) -> list[dict[str, Any]]:
    end = time.monotonic() + timeout_s
    while True:
        lines = [json.loads(line) for line in list(process.output) if line.startswith("{") and request_id in line]
        if lines or time.monotonic() >= end:
            return lines
        time.sleep(0.05)


@pytest.mark.req("FR-059", "SC-026", "FR-012")
def test_each_warm_invocation_reads_its_own_header_and_the_c_environment_never_holds_one(
    probe_environment: tuple[RuntimeApi, RuntimeProcess],
) -> None:
    runtime, process = probe_environment
    for _ in range(3):  # a cold invocation, then warm ones, each from its own upstream trace
        upstream = TraceHeader.new_root().with_parent(new_entity_id(), True)
        call = runtime.invoke(function_url_event("GET", "/api/v2/stream/status"), upstream=upstream, timeout_s=20)
        seen = call.result(20)
        header = call.invocation.trace_header
        assert header.root == upstream.root and header.parent != upstream.parent  # the function segment's
        assert seen["os_environ"] == seen["os_getenv"] == header.format()
        assert seen["xray_sdk"] == [header.root, header.parent]
        assert seen["otel"] == [header.root[2:].replace("-", ""), header.parent]
        assert seen["c_getenv"] is None  # neither this header nor the stale one the process started with
        logged = _log_lines(process, call.invocation.request_id)
        assert [line["xray_trace_id"] for line in logged] == [header.root], list(process.output)


@pytest.mark.req("FR-059")
def test_a_new_header_per_invocation_costs_the_heap_nothing() -> None:
    """20,000 distinct headers through the bootstrap leave glibc's heap as it was; the probe is
    sensitive enough to see what os.environ[...] = ... (setenv) keeps: ~120 bytes each, for ever."""
    if not hasattr(ctypes.CDLL(None), "mallinfo2"):
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")
    finished = subprocess.run([sys.executable, "-c", HEAP_PROBE, str(BOOTSTRAP), "20000", "5000"],
                              capture_output=True, text=True, timeout=60, check=True)
    cost = json.loads(finished.stdout)
    assert cost["seen"].startswith("Root=1-00004e83-")  # the last header set (n = 100 + 20,000 - 1) is read back
    assert cost["bootstrap"] < 4, cost
    assert cost["setenv"] > 80, cost
