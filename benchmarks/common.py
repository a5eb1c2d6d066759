"""Shared plumbing for the benchmarks: the local pipeline, percentiles, result rows."""

from __future__ import annotations

import os
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT)]
os.environ.setdefault("LAMBDA_TASK_ROOT", str(ROOT / "src"))
for key, value in {"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                   "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing"}.items():
    os.environ.setdefault(key, value)


@dataclass
class Row:
    benchmark: str
    figure: str
    value: str
    target: str
    met: bool | None

    def cells(self) -> list[str]:
        verdict = "-" if self.met is None else ("yes" if self.met else "**no**")
        return [self.benchmark, self.figure, self.value, self.target, verdict]


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def median(values: list[float]) -> float:
    return statistics.median(values)


class CountingSink:
    """A trace sink that only counts documents: benchmarks that run thousands of invocations measure
    the function, not moto storing every segment."""

    def __init__(self) -> None:
        self.documents = 0

    def submit(self, raw_document: str) -> None:
        self.documents += 1

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        return True


class SseFunction:
    """One execution environment of the SSE function: the image's real `bootstrap` as a child process
    against a local Runtime API (devstack.lambda_.runtime_api), on moto, exporting to `traces_endpoint`."""

    def __init__(self, aws_endpoint: str, resources: Any, daemon_address: str, traces_endpoint: str,
                 overrides: dict[str, str] | None = None, sampling_rule: Any = None):
        from devstack.lambda_.invocation import lambda_environment
        from devstack.lambda_.lambda_service import runtime_command
        from devstack.lambda_.process import RuntimeProcess
        from devstack.lambda_.runtime_api import RuntimeApi
        from devstack.stack import SRC_ROOT, load_stack

        self.spec = load_stack().function("sse_streaming")
        self.runtime = RuntimeApi(self.spec, daemon_address, sampling_rule)
        resolved = {name: resources.resolve(value) for name, value in self.spec.env.items()}
        environment = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"), "AWS_ENDPOINT_URL": aws_endpoint,
            **{key: os.environ[key] for key in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID",
                                                "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")},
            **lambda_environment(self.spec, {**resolved, **(overrides or {})}, daemon_address),
            "PYTHONPATH": str(SRC_ROOT), "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": traces_endpoint,
        }
        self.process = RuntimeProcess(self.runtime, runtime_command(self.spec), environment)

    def __enter__(self) -> SseFunction:
        self.runtime.start()
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.stop()
        self.runtime.stop()

    def open(self, path: str = "/api/v2/stream", headers: dict[str, str] | None = None,
             timeout_s: float = 2.0) -> Any:
        from devstack.lambda_.events import function_url_event

        return self.runtime.invoke(function_url_event("GET", path, headers), timeout_s=timeout_s)

    @property
    def pid(self) -> int:
        """The runtime process's id (once started)."""
        assert self.process.pid is not None, "the environment is not started"
        return self.process.pid

    def proc_status(self, field: str) -> int:
        """A `/proc/<pid>/status` figure of the runtime process (`Threads`, `VmRSS` in kB)."""
        with open(f"/proc/{self.pid}/status") as status:
            line = next(line for line in status if line.startswith(f"{field}:"))
        return int(line.split()[1])
