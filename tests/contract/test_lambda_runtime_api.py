"""Contract tests of the devstack's Runtime API (`devstack.lambda_.runtime_api`) on what the Lambda
service does with a runtime's invocation error: the function segment's fault and its cause.

Each test names the AWS contract it holds the emulator to, and cites it.
"""

from __future__ import annotations

import http.client
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.aws.moto_server import MotoServer
from devstack.lambda_.invocation import lambda_environment
from devstack.lambda_.process import RuntimeProcess
from devstack.lambda_.response_stream import FunctionError, ResponseStream
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.lambda_.wire import (
    ERROR_TYPE_HEADER,
    NEXT_PATH,
    REQUEST_ID_HEADER,
    XRAY_ERROR_CAUSE_HEADER,
    invocation_path,
)
from devstack.stack import REPO_ROOT, SRC_ROOT, FunctionSpec
from devstack.xray.pipeline import TracePipeline

PROBE = FunctionSpec("probe", "tests.fixtures.probe_handler.lambda_handler", "zip", 256, 30, {}, {}, None)


@pytest.fixture
def runtime(trace_pipeline: TracePipeline) -> Iterator[RuntimeApi]:
    with RuntimeApi(PROBE, trace_pipeline.daemon.address) as api:
        yield api


def _fail_next(runtime: RuntimeApi, headers: dict[str, str]) -> None:
    """A custom runtime's turn: take the next invocation, report it failed with `headers`."""
    connection = http.client.HTTPConnection(runtime.address, timeout=10)
    connection.request("GET", NEXT_PATH)
    response = connection.getresponse()
    response.read()
    request_id = response.getheader(REQUEST_ID_HEADER)
    assert request_id
    body = json.dumps({"errorMessage": "no such key", "errorType": "KeyError"}).encode()
    connection.request("POST", invocation_path("error", request_id), body=body,
                       headers={ERROR_TYPE_HEADER: "KeyError", "Content-Type": "application/json", **headers})
    assert connection.getresponse().status == 202
    connection.close()


def _function_segment(pipeline: TracePipeline, call: ResponseStream) -> dict[str, Any]:
    documents = pipeline.tree(call.invocation.trace_header.root, expect_at_least=2).documents
    return next(doc for doc in documents if doc.get("origin") == "AWS::Lambda::Function")


@pytest.mark.req("FR-005")
def test_an_invocation_error_without_the_xray_error_cause_header_faults_the_function_segment_with_no_cause(
    runtime: RuntimeApi, trace_pipeline: TracePipeline
) -> None:
    """The runtime reports an invocation error on `/runtime/invocation/{id}/error` with
    `Lambda-Runtime-Function-Error-Type`, and may add `Lambda-Runtime-Function-XRay-Error-Cause`, the
    cause X-Ray records for the function segment
    (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-invokeerror). Without
    that header Lambda has no cause to record: the segment is faulted, its cause not invented."""
    call = runtime.invoke({}, timeout_s=10)
    _fail_next(runtime, {})
    with pytest.raises(FunctionError):
        call.result(timeout_s=5)
    segment = _function_segment(trace_pipeline, call)
    assert segment["fault"] is True
    assert "cause" not in segment


@pytest.mark.req("FR-005")
def test_the_function_segment_cause_is_exactly_the_runtimes_xray_error_cause_header(
    runtime: RuntimeApi, trace_pipeline: TracePipeline
) -> None:
    """`Lambda-Runtime-Function-XRay-Error-Cause` is a JSON cause (working_directory, exceptions, paths,
    as awslambdaric's `make_xray_fault` writes it); the function segment's cause is that, nothing added
    (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html#runtimes-api-invokeerror)."""
    cause = {"working_directory": "/var/task", "paths": ["/var/task/handler.py"],
             "exceptions": [{"type": "KeyError", "message": "'ticker'",
                             "stack": [{"label": "lambda_handler", "path": "/var/task/handler.py", "line": 7}]}]}
    call = runtime.invoke({}, timeout_s=10)
    _fail_next(runtime, {XRAY_ERROR_CAUSE_HEADER: json.dumps(cause)})
    with pytest.raises(FunctionError):
        call.result(timeout_s=5)
    segment = _function_segment(trace_pipeline, call)
    assert segment["fault"] is True
    assert segment["cause"] == cause


@pytest.mark.req("FR-005", "FR-058", "SC-025")
def test_awslambdaric_sends_the_xray_error_cause_and_it_becomes_the_function_segments_cause(
    runtime: RuntimeApi, trace_pipeline: TracePipeline, moto_server: MotoServer
) -> None:
    """AWS's Python runtime client reports a handler's exception with the X-Ray cause header
    (awslambdaric/bootstrap.py `handle_event_request` → `make_xray_fault`, posted by
    `lambda_runtime_client.post_invocation_error`; public source:
    github.com/aws/aws-lambda-python-runtime-interface-client), so a zip function's segment carries the
    exception's type, message and stack as the runtime wrote them."""
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **moto_server.environment(),
                   **lambda_environment(PROBE, {}, trace_pipeline.daemon.address), "PYTHONPATH": str(SRC_ROOT)}
    with RuntimeProcess(runtime, [sys.executable, "-m", "awslambdaric", PROBE.handler], environment, cwd=REPO_ROOT):
        call = runtime.invoke({"action": "raise", "message": "boom"}, timeout_s=20)
        with pytest.raises(FunctionError):
            call.result()
    segment = _function_segment(trace_pipeline, call)
    assert segment["fault"] is True
    exception = segment["cause"]["exceptions"][0]
    assert (exception["type"], exception["message"]) == ("RuntimeError", "boom")
    assert any(frame["label"] == "lambda_handler" for frame in exception["stack"])
    assert segment["cause"]["working_directory"] == str(REPO_ROOT)
