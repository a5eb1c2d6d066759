"""The X-Ray SDK internals lib.tracing relies on are there, with the signatures it calls them with.

`lib.tracing.powertools` subclasses or calls a few private parts of `aws-xray-sdk` (pinned in
constraints.txt). A release that renames or reshapes one would fail every invocation in Lambda;
here it fails CI when the pin moves. Each entry says where the code uses it.
"""

from __future__ import annotations

import inspect
import threading
from typing import Any

import pytest
from aws_xray_sdk.core.emitters import udp_emitter
from aws_xray_sdk.core.lambda_launcher import LambdaContext
from aws_xray_sdk.core.models.subsegment import Subsegment
from aws_xray_sdk.core.models.throwable import Throwable
from aws_xray_sdk.core.recorder import AWSXRayRecorder

pytestmark = pytest.mark.req("FR-029", "FR-018")

# (callable, the parameter names the code passes or overrides): signatures as lib.tracing uses them.
SIGNATURES: list[tuple[Any, list[str], str]] = [
    (udp_emitter.UDPEmitter.__init__, ["self", "daemon_address"], "BoundedUDPEmitter(address)"),
    (udp_emitter.UDPEmitter._send_data, ["self", "data"], "BoundedUDPEmitter.send_entity"),
    (udp_emitter.UDPEmitter.send_entity, ["self", "entity"], "BoundedUDPEmitter overrides it"),
    (LambdaContext._refresh_context, ["self"], "HeaderCachingLambdaContext overrides it"),
    (Throwable.__init__, ["self", "exception", "stack", "remote"], "mark_failure: Throwable(error, stack)"),
]


@pytest.mark.parametrize(("function", "parameters", "used_by"), SIGNATURES,
                         ids=lambda v: getattr(v, "__qualname__", ""))
def test_private_sdk_callables_keep_the_signature_lib_tracing_uses(function: Any, parameters: list[str],
                                                                  used_by: str) -> None:
    assert list(inspect.signature(function).parameters) == parameters, used_by


def test_the_recorder_accepts_what_lambda_tracer_configures() -> None:
    accepted = inspect.signature(AWSXRayRecorder.configure).parameters
    assert {"emitter", "max_trace_back", "context"} <= set(accepted)


def test_the_udp_protocol_constants_the_emitter_writes_with() -> None:
    assert udp_emitter.PROTOCOL_HEADER == '{"format":"json","version":1}'
    assert udp_emitter.PROTOCOL_DELIMITER == "\n"
    assert udp_emitter.DEFAULT_DAEMON_ADDRESS == "127.0.0.1:2000"


def test_the_lambda_context_keeps_its_state_in_a_thread_local_named_local() -> None:
    context = LambdaContext()
    assert isinstance(context._local, threading.local)  # HeaderCachingLambdaContext reads and marks it


def test_a_subsegment_serialises_the_cause_mark_failure_builds() -> None:
    from aws_xray_sdk.core.models.segment import Segment

    segment = Segment("contract", traceid="1-5759e988-bd862e3fe1be46a994272793", sampled=True)
    subsegment = Subsegment("step", "local", segment)
    error = ValueError("boom")
    subsegment.cause = {"working_directory": "/", "exceptions": [Throwable(error, [])]}
    subsegment.add_fault_flag()
    document = subsegment.to_dict()
    assert document["cause"]["exceptions"][0]["type"] == "ValueError"
    assert document["cause"]["exceptions"][0]["message"] == "boom"
    assert document["fault"] is True
