"""The local trace pipeline in one object: moto, the sink, the X-Ray daemon and the OTLP receiver.

Tests, benchmarks and `python -m devstack` all use this same machinery.

Example (not run: starts moto, the daemon and the receiver):
    >>> with TracePipeline() as pipeline:              # doctest: +SKIP
    ...     ...                                        # run code that traces
    ...     tree = pipeline.tree(trace_id)
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import boto3

from devstack.aws.moto_server import REGION, MotoServer
from devstack.xray.collector_config import load_indexed_attributes
from devstack.xray.daemon import XRayDaemon
from devstack.xray.otlp_receiver import OtlpReceiver
from devstack.xray.segment_sink import SegmentSink
from devstack.xray.trace_reader import TraceTree, read_traces


def devstack_dir() -> Path:
    return Path(os.environ.get("DEVSTACK_DIR", ".devstack"))


class TracePipeline:
    def __init__(
        self,
        record_path: Path | None = None,
        indexed_attributes: frozenset[str] | None = None,
        daemon_port: int = 0,
        receiver_port: int = 0,
        moto: MotoServer | None = None,
    ):
        self._owns_moto = moto is None
        self.moto = moto or MotoServer()
        self._record_path = record_path
        # By default the receiver indexes what the SSE image's collector config indexes.
        self._indexed_attributes = load_indexed_attributes() if indexed_attributes is None else indexed_attributes
        self._daemon_port = daemon_port
        self._receiver_port = receiver_port

    @property
    def record_path(self) -> Path:
        """The segments.jsonl every stored document is appended to (ValueError when it keeps none)."""
        if self._record_path is None:
            raise ValueError("this pipeline keeps no record file")
        return self._record_path

    def start(self) -> TracePipeline:
        if self._owns_moto:
            self.moto.start()
        self.xray = self.client("xray")
        self.sink = SegmentSink(self.xray, self._record_path).start()
        self.daemon = XRayDaemon(self.sink, port=self._daemon_port).start()
        self.receiver = OtlpReceiver(self.sink, self._indexed_attributes, port=self._receiver_port).start()
        return self

    def client(self, service: str) -> Any:
        return boto3.client(
            service, endpoint_url=self.moto.endpoint, region_name=REGION,
            aws_access_key_id="testing", aws_secret_access_key="testing",
        )

    def stop(self) -> None:
        self.receiver.stop()
        self.daemon.stop()
        self.sink.stop()
        if self._owns_moto:
            self.moto.stop()

    def __enter__(self) -> TracePipeline:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def settle(self, timeout_s: float = 10.0) -> None:
        """Wait until everything sent so far is stored (batch processors flush within ~1 s)."""
        if not self.daemon.wait_idle(timeout_s):
            raise TimeoutError("trace pipeline did not drain")

    def tree(self, trace_id: str, expect_at_least: int = 1, timeout_s: float = 10.0) -> TraceTree:
        """The trace as X-Ray returns it, once it holds at least `expect_at_least` documents."""
        end = time.monotonic() + timeout_s
        while True:
            self.settle(timeout_s)
            trees = read_traces(self.xray, [trace_id])
            if trees and len(trees[0].documents) >= expect_at_least:
                return trees[0]
            if time.monotonic() > end:
                found = len(trees[0].documents) if trees else 0
                raise AssertionError(f"trace {trace_id}: {found} documents, expected >= {expect_at_least}")
            time.sleep(0.05)

    def documents(self, trace_id: str) -> list[dict[str, Any]]:
        self.settle()
        trees = read_traces(self.xray, [trace_id])
        return trees[0].documents if trees else []
