"""What the Lambda service does around an invocation: the trace environment and the facade segments.

Inside Lambda the function's process sees `_X_AMZN_TRACE_ID` (Root, Parent = the function
segment's id, Sampled) and the X-Ray SDK sends only subsegments; the service itself writes the
`AWS::Lambda` and `AWS::Lambda::Function` segments. `Invocation` does exactly that, so the
SDK's and OTel's documents have a real parent, and `invoke_in_process` runs a handler that way
(tests and benchmarks; the devstack runs each function in its own process via the Runtime API).

Example (not run: needs a running trace pipeline):
    >>> result = invoke_in_process(load_stack().function("metrics"), {}, env, daemon.address)  # doctest: +SKIP
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from devstack.lambda_.wire import XRAY_ERROR_CAUSE_HEADER
from devstack.stack import SRC_ROOT, FunctionSpec
from lib.tracing.bounds import truncate_message
from lib.tracing.header import TraceHeader, new_entity_id

log = logging.getLogger("devstack.lambda_.invocation")

ACCOUNT_ID = "123456789012"
UDP_HEADER = '{"format":"json","version":1}\n'


@dataclass
class SamplingRule:
    """The devstack's stand-in for X-Ray sampling rules: a fixed rate and a per-second reservoir.

    moto has no sampling rules, so the local Lambda service and gateway decide here, as the
    X-Ray service would for API Gateway and Lambda (DESIGN.md).
    """

    fixed_rate: float = 1.0
    reservoir_per_second: int = 1
    _second: int = field(default=-1, repr=False)
    _used: int = field(default=0, repr=False)

    def decide(self) -> bool:
        now = int(time.time())
        if now != self._second:
            self._second, self._used = now, 0
        if self._used < self.reservoir_per_second:
            self._used += 1
            return True
        import random

        return random.random() < self.fixed_rate


def lambda_environment(function: FunctionSpec, resolved_env: Mapping[str, str], daemon_address: str) -> dict[str, str]:
    """The environment Lambda gives a function's process (static part; `_X_AMZN_TRACE_ID` is per invocation)."""
    env = {
        "LAMBDA_TASK_ROOT": str(SRC_ROOT),
        "AWS_LAMBDA_FUNCTION_NAME": function.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_mb),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{function.name}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]{uuid.uuid4().hex}",
        "AWS_XRAY_DAEMON_ADDRESS": daemon_address,
        "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
        "POWERTOOLS_SERVICE_NAME": function.service_name,
    }
    if function.package == "image":
        # An image function gets its handler as the image command (argv), not `_HANDLER`
        # (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html): see lambda_service.runtime_command.
        env["OTEL_SERVICE_NAME"] = function.service_name  # FR-071
    else:
        env["_HANDLER"] = function.handler
    env.update(resolved_env)
    return env


class Invocation:
    """One invocation's trace identity, and the two segments the Lambda service writes for it."""

    def __init__(
        self,
        function: FunctionSpec,
        daemon_address: str,
        upstream: TraceHeader | None = None,
        upstream_segment_written: bool = False,
        sampling_rule: SamplingRule | None = None,
    ):
        self.function = function
        self.request_id = str(uuid.uuid4())
        self.service_segment_id = new_entity_id()
        self.function_segment_id = new_entity_id()
        incoming = upstream or TraceHeader.new_root()
        sampled = incoming.sampled
        if sampled is None:
            sampled = (sampling_rule or SamplingRule()).decide()
        self.upstream_parent = incoming.parent if upstream_segment_written else None
        self.trace_header = incoming.with_parent(self.function_segment_id, sampled)
        self.start_time = time.time()
        self.deadline_ms = int((self.start_time + function.timeout_s) * 1000)
        host, _, port = daemon_address.partition(":")
        self._daemon = (host, int(port))

    @property
    def sampled(self) -> bool:
        return bool(self.trace_header.sampled)

    def context(self) -> LocalLambdaContext:
        return LocalLambdaContext(self)

    def finish(self, failed: bool = False, cause: Mapping[str, Any] | None = None, status: int = 200) -> None:
        """Write the `AWS::Lambda` and `AWS::Lambda::Function` segments (only when sampled).

        A failed invocation marks the function segment `fault`. Its `cause` is what the runtime sent
        in `Lambda-Runtime-Function-XRay-Error-Cause` (the Runtime API reference,
        https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-invokeerror;
        awslambdaric's `lambda_runtime_client.post_invocation_error` sends it), and nothing when the
        runtime sent none: the service does not invent one.
        """
        if not self.sampled:
            return
        end = time.time()
        trace_id = self.trace_header.root
        service_segment: dict[str, Any] = {
            "name": self.function.name,
            "origin": "AWS::Lambda",
            "id": self.service_segment_id,
            "trace_id": trace_id,
            "start_time": self.start_time,
            "end_time": end,
            "http": {"response": {"status": status}},
            "aws": {"request_id": self.request_id},
        }
        if self.upstream_parent:
            service_segment["parent_id"] = self.upstream_parent
        function_segment: dict[str, Any] = {
            "name": self.function.name,
            "origin": "AWS::Lambda::Function",
            "id": self.function_segment_id,
            "parent_id": self.service_segment_id,
            "trace_id": trace_id,
            "start_time": self.start_time + 0.0001,
            "end_time": end,
            "aws": {
                "function_arn": f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{self.function.name}",
                "resource_names": [self.function.name],
            },
        }
        if failed:
            function_segment["fault"] = True
            if cause is not None:
                function_segment["cause"] = bounded_cause(cause)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            for document in (service_segment, function_segment):
                udp.sendto((UDP_HEADER + json.dumps(document)).encode(), self._daemon)


class LocalLambdaContext:
    """The `context` argument a Python Lambda handler receives."""

    def __init__(self, invocation: Invocation):
        function = invocation.function
        self.function_name = function.name
        self.function_version = "$LATEST"
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:{ACCOUNT_ID}:function:{function.name}"
        self.memory_limit_in_mb = function.memory_mb
        self.aws_request_id = invocation.request_id
        self.log_group_name = f"/aws/lambda/{function.name}"
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME", "local")
        self._deadline_ms = invocation.deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self._deadline_ms - int(time.time() * 1000))


@contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def xray_cause(header: str | None) -> dict[str, Any] | None:
    """The function segment's cause from `Lambda-Runtime-Function-XRay-Error-Cause` (JSON: working_directory,
    exceptions, paths, as awslambdaric's `make_xray_fault` writes it); None when absent, empty (awslambdaric
    sends "" for a cause over 1 MiB) or unreadable. What Lambda does with an unreadable one is undocumented:
    conservatively, no cause rather than an invented one.

    Example:
        >>> xray_cause('{"exceptions": [{"type": "KeyError", "message": "x"}]}')["exceptions"][0]["type"]
        'KeyError'
        >>> xray_cause("") is None
        True
    """
    if not header:
        return None
    try:
        cause = json.loads(header)
    except ValueError:
        log.warning("unreadable %s header: the function segment gets no cause", XRAY_ERROR_CAUSE_HEADER)
        return None
    return cause if isinstance(cause, dict) else None


def bounded_cause(cause: Mapping[str, Any]) -> dict[str, Any]:
    """The runtime's cause with each exception message cut to our bound (FR-058).

    awslambdaric sends causes up to 1 MiB; X-Ray takes documents up to 64 KB. How Lambda keeps its
    function segment within that is undocumented, so the conservative reading: the cause as sent,
    its messages bounded; nothing added.

    Example:
        >>> bounded_cause({"exceptions": [{"type": "E", "message": "x" * 5000}]})["exceptions"][0]["message"][-3:]
        '...'
    """
    bounded = dict(cause)
    exceptions = cause.get("exceptions")
    if isinstance(exceptions, list):
        bounded["exceptions"] = [
            {**exception, "message": truncate_message(str(exception["message"]))}
            if isinstance(exception, dict) and "message" in exception else exception
            for exception in exceptions
        ]
    return bounded


def _awslambdaric_cause(error: BaseException) -> dict[str, Any]:
    """The cause awslambdaric sends for a handler's exception (`make_xray_fault` in
    awslambdaric/bootstrap.py, as `handle_event_request` builds it), built by awslambdaric itself."""
    from awslambdaric.bootstrap import extract_traceback, make_xray_fault

    frames = extract_traceback(error.__traceback__)
    return make_xray_fault(type(error).__name__, str(error), os.getcwd(), frames)  # type: ignore[no-any-return]


# One execution environment per function for in-process invocations: a thread kept for the process's
# life. Lambda clears nothing between warm invocations
# (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html: the environment is
# reused, its memory and /tmp as the last invocation left them), so the X-Ray SDK's thread-local
# context stays as the handler left it; code that needs a per-invocation reset does it itself
# (lib.tracing.powertools). The thread keeps that state away from the caller's own thread, which in
# Lambda would not exist.
_ENVIRONMENTS: dict[tuple[str, str], ThreadPoolExecutor] = {}
_ENVIRONMENTS_LOCK = threading.Lock()


def _environment_thread(function: FunctionSpec) -> ThreadPoolExecutor:
    with _ENVIRONMENTS_LOCK:
        key = (function.key, function.handler)
        if key not in _ENVIRONMENTS:
            _ENVIRONMENTS[key] = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"env-{function.key}")
        return _ENVIRONMENTS[key]


def invoke_in_process(
    function: FunctionSpec,
    event: Any,
    resolved_env: Mapping[str, str],
    daemon_address: str,
    upstream: TraceHeader | None = None,
    upstream_segment_written: bool = False,
    sampling_rule: SamplingRule | None = None,
) -> tuple[Any, Invocation]:
    """Run `function`'s handler in this process as Lambda would; returns (result, invocation).

    The handler module is imported inside the Lambda environment (its Tracer reads it at
    construction), and stays imported: the next call is a warm invocation. Errors propagate after
    the facade is written, as Lambda reports them.
    """
    invocation = Invocation(function, daemon_address, upstream, upstream_segment_written, sampling_rule)
    env = {**lambda_environment(function, resolved_env, daemon_address),
           "_X_AMZN_TRACE_ID": invocation.trace_header.format()}
    module_name, _, attribute = function.handler.rpartition(".")

    def run() -> Any:
        handler = getattr(importlib.import_module(module_name), attribute)
        return handler(event, invocation.context())

    with _environment(env):
        try:
            result = _environment_thread(function).submit(run).result()
        except Exception as error:
            invocation.finish(failed=True, cause=_awslambdaric_cause(error))
            raise
    invocation.finish()
    return result, invocation
