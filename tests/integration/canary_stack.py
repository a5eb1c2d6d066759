"""The functions the canary probes, for its tests: the dashboard and SSE functions in their own
worker processes (devstack.lambda_.lambda_service.LambdaService: awslambdaric, the SSE image's bootstrap), behind
a local Lambda Invoke API (devstack.lambda_.invoke_api) the canary's boto3 client reaches through
`AWS_ENDPOINT_URL_LAMBDA`.

Faults are set where production breaks, per function environment:
- the daemon not listening: the function's `AWS_XRAY_DAEMON_ADDRESS` names a UDP port nobody reads;
- `PutTraceSegments` denied for the function's role: its daemon forwards with a client X-Ray refuses
  (AccessDeniedException), as the daemon in Lambda signs with the function's role;
- the collector's OTLP receiver down: the SSE function's `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is a
  closed port;
- the collector exporting to the wrong region: that endpoint is a collector whose X-Ray is another
  region's (devstack.xray.faults, as the daemon above).
The Lambda service's own segments (AWS::Lambda, AWS::Lambda::Function) always reach X-Ray: in AWS the
service writes them, not the function's daemon or role.
"""

from __future__ import annotations

import json
import secrets
import socket
import uuid
from collections.abc import Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.lambda_.invoke_api import LambdaInvokeApi
from devstack.lambda_.lambda_service import LambdaService
from devstack.stack import load_stack
from devstack.xray.faults import denied_daemon, misrouted_collector
from devstack.xray.pipeline import TracePipeline


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class ProbeTargets:
    pipeline: TracePipeline
    moto: MotoServer
    resources: Resources
    api: LambdaInvokeApi
    healthy: LambdaService

    @contextmanager
    def serving(self, overrides: Mapping[str, Mapping[str, str]]) -> Iterator[LambdaService]:
        """The Invoke API answers from functions started with `overrides` for the block's duration."""
        service = _service(self.pipeline, self.moto, self.resources, overrides)
        self.api.service = service
        try:
            yield service
        finally:
            self.api.service = self.healthy
            service.stop()

    def put_trace_segments_denied(self) -> AbstractContextManager[str]:
        """A daemon whose PutTraceSegments X-Ray refuses; yields its address for a function's env."""
        return denied_daemon(self.pipeline)

    def misrouted_collector(self) -> AbstractContextManager[tuple[str, Any]]:
        """A collector exporting to X-Ray in another region; yields its endpoint and that region's X-Ray client."""
        return misrouted_collector(self.pipeline)


def _service(pipeline: TracePipeline, moto: MotoServer, resources: Resources,
             overrides: Mapping[str, Mapping[str, str]]) -> LambdaService:
    env = {"sse_streaming": {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": pipeline.receiver.endpoint,
                             "SSE_POLL_INTERVAL_S": "0.2", "SSE_DEADLINE_MARGIN_S": "0.5"}}
    for key, values in overrides.items():
        env[key] = {**env.get(key, {}), **values}
    return LambdaService(load_stack(), resources, pipeline.daemon.address, moto.endpoint, env_overrides=env).start()


@pytest.fixture(scope="session")
def probe_targets(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources
                  ) -> Iterator[ProbeTargets]:
    """The probed functions, healthy, behind one Invoke API endpoint for the whole session."""
    boto3.client("secretsmanager").put_secret_value(
        SecretId=stack_resources.secrets["canary_probe"], SecretString=json.dumps({"token": secrets.token_hex(16)}))
    healthy = _service(trace_pipeline, moto_server, stack_resources, {})
    api = LambdaInvokeApi(healthy).start()
    yield ProbeTargets(trace_pipeline, moto_server, stack_resources, api, healthy)
    api.stop()
    healthy.stop()


def canary_probe_env(targets: ProbeTargets) -> dict[str, str]:
    """What the canary's environment adds in tests: the Lambda endpoint (all else is stack.json's)."""
    return {"AWS_ENDPOINT_URL_LAMBDA": targets.api.endpoint}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"
