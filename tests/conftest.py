"""Shared fixtures. The process is a Lambda execution environment for the in-process helper:
`LAMBDA_TASK_ROOT` must be set before the X-Ray SDK is imported (it decides its context then)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("LAMBDA_TASK_ROOT", str(REPO_ROOT / "src"))
os.environ.setdefault("AWS_XRAY_CONTEXT_MISSING", "LOG_ERROR")
for key, value in {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}.items():
    os.environ[key] = value
sys.path.insert(0, str(REPO_ROOT / "src"))

from typing import Any  # noqa: E402

import pytest  # noqa: E402

from devstack.aws.moto_server import MotoServer  # noqa: E402
from devstack.aws.resources import Resources, create_resources  # noqa: E402
from devstack.lambda_.invocation import Invocation, SamplingRule, invoke_in_process  # noqa: E402
from devstack.stack import load_stack  # noqa: E402
from devstack.xray.pipeline import TracePipeline  # noqa: E402
from lib.tracing.header import TraceHeader  # noqa: E402


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    server = MotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = server.endpoint
    yield server
    server.stop()


@pytest.fixture(scope="session")
def trace_pipeline(moto_server: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TracePipeline]:
    """moto + local X-Ray daemon + OTLP receiver, shared by the session (tests use fresh trace ids)."""
    record = tmp_path_factory.mktemp("devstack") / "traces" / "segments.jsonl"
    pipeline = TracePipeline(record_path=record, moto=moto_server).start()
    os.environ["AWS_XRAY_DAEMON_ADDRESS"] = pipeline.daemon.address
    os.environ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = pipeline.receiver.endpoint
    yield pipeline
    pipeline.stop()


@pytest.fixture(scope="session")
def stack_resources(moto_server: MotoServer) -> Resources:
    """Every table, topic, queue and secret of the stack map, created once on the session's moto."""
    return create_resources(load_stack())


class Invoker:
    """Runs a stack function's handler in this process the way Lambda would (see devstack.lambda_.invocation)."""

    def __init__(self, pipeline: TracePipeline, resources: Resources):
        self.pipeline = pipeline
        self.resources = resources

    def env(self, key: str) -> dict[str, str]:
        spec = load_stack().function(key)
        return {name: self.resources.resolve(value) for name, value in spec.env.items()}

    def __call__(
        self, key: str, event: Any, upstream: TraceHeader | None = None, upstream_segment_written: bool = False,
        sampling_rule: SamplingRule | None = None,
    ) -> tuple[Any, Invocation]:
        return invoke_in_process(
            load_stack().function(key), event, self.env(key), self.pipeline.daemon.address,
            upstream, upstream_segment_written, sampling_rule,
        )


@pytest.fixture(scope="session")
def invoke(trace_pipeline: TracePipeline, stack_resources: Resources) -> Invoker:
    """`invoke("analysis", event)` → (result, invocation); `invocation.trace_header.root` is the trace id."""
    return Invoker(trace_pipeline, stack_resources)
