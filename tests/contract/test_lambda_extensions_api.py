"""The devstack's Extensions API (devstack.lambda_.extensions_api) against AWS's contract.

Source for every test unless it says otherwise: the Lambda Extensions API reference,
https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html. Requests are made by hand
(a scripted extension) and by a real extension: the SSE image's stand-in collector
(docker/sse/standin-collector/extensions/collector), run here as a host process.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.lambda_.runtime_api import EnvironmentEndpoint, RuntimeApi
from devstack.lambda_.wire import (
    DEADLINE_HEADER,
    EXTENSION_ID_HEADER,
    EXTENSION_NAME_HEADER,
    FUNCTION_ARN_HEADER,
    NEXT_PATH,
    REQUEST_ID_HEADER,
    TRACE_ID_HEADER,
)
from devstack.stack import REPO_ROOT, FunctionSpec
from devstack.xray.pipeline import TracePipeline

PROBE = FunctionSpec("probe", "tests.fixtures.probe_handler.lambda_handler", "zip", 256, 30, {}, {}, None)
EXTENSION_API = "/2020-01-01/extension"
STANDIN = REPO_ROOT / "docker" / "sse" / "standin-collector" / "extensions" / "collector"


@pytest.fixture
def runtime(trace_pipeline: TracePipeline) -> Iterator[RuntimeApi]:
    with RuntimeApi(PROBE, trace_pipeline.daemon.address) as api:
        yield api


@pytest.fixture
def environment(runtime: RuntimeApi) -> Iterator[EnvironmentEndpoint]:
    endpoint = runtime.open_environment()
    yield endpoint
    runtime.close_environment(endpoint)


def call(address: str, method: str, path: str, headers: dict[str, str] | None = None, body: Any = None,
         timeout: float = 10) -> tuple[int, dict[str, str], Any]:
    connection = http.client.HTTPConnection(address, timeout=timeout)
    payload = json.dumps(body).encode() if body is not None else None
    connection.request(method, path, body=payload, headers=headers or {})
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, {key.lower(): value for key, value in response.getheaders()}, json.loads(raw or b"null")


def register(address: str, name: str = "probe-extension", events: list[str] | None = None) -> str:
    status, headers, _ = call(address, "POST", f"{EXTENSION_API}/register", {EXTENSION_NAME_HEADER: name},
                              {"events": events if events is not None else ["INVOKE", "SHUTDOWN"]})
    assert status == 200
    return headers[EXTENSION_ID_HEADER.lower()]


@pytest.mark.req("FR-062", "SC-029")
def test_register_answers_with_an_identifier_and_the_function(environment: EnvironmentEndpoint) -> None:
    """Reference, "Register": 200, `Lambda-Extension-Identifier` header, body functionName,
    functionVersion, handler."""
    status, headers, body = call(environment.address, "POST", f"{EXTENSION_API}/register",
                                 {EXTENSION_NAME_HEADER: "collector"}, {"events": ["INVOKE", "SHUTDOWN"]})
    assert status == 200
    assert headers[EXTENSION_ID_HEADER.lower()]
    assert body == {"functionName": PROBE.name, "functionVersion": "$LATEST", "handler": PROBE.handler}
    assert environment.extensions.registered() == ["collector"]


@pytest.mark.req("FR-062")
@pytest.mark.parametrize(("headers", "body"), [({}, {"events": ["INVOKE"]}),
                                               ({EXTENSION_NAME_HEADER: "x"}, {"events": ["LOGS"]}),
                                               ({EXTENSION_NAME_HEADER: "x"}, {})],
                         ids=["no-name", "unknown-event", "no-events"])
def test_a_bad_registration_is_a_400_and_registers_nothing(environment: EnvironmentEndpoint,
                                                            headers: dict[str, str], body: Any) -> None:
    """Reference, "Register": `Lambda-Extension-Name` is required, events are INVOKE and SHUTDOWN;
    400 Bad Request otherwise."""
    status, _, reply = call(environment.address, "POST", f"{EXTENSION_API}/register", headers, body)
    assert status == 400 and reply["errorType"] and reply["errorMessage"]
    assert environment.extensions.registered() == []


@pytest.mark.req("FR-062")
def test_next_with_an_unknown_identifier_is_a_403(environment: EnvironmentEndpoint) -> None:
    """Reference, "Next": 403 Forbidden for an extension that is not registered."""
    status, _, reply = call(environment.address, "GET", f"{EXTENSION_API}/event/next",
                            {EXTENSION_ID_HEADER: "not-registered"})
    assert status == 403 and reply["errorType"]


@pytest.mark.req("FR-062", "FR-054")
def test_an_invocation_taken_by_the_runtime_is_an_invoke_event_for_that_environments_extensions(
        runtime: RuntimeApi, environment: EnvironmentEndpoint) -> None:
    """Reference, "Next" / "Invoke phase": the INVOKE event carries deadlineMs, requestId,
    invokedFunctionArn and tracing {type X-Amzn-Trace-Id, value}; it goes to extensions registered
    for INVOKE in the environment whose runtime took the invocation (one environment, one Extensions
    API: AWS_LAMBDA_RUNTIME_API is per environment), not to another environment's."""
    mine = register(environment.address)
    shutdown_only = register(environment.address, "shutdown-only", ["SHUTDOWN"])
    other = runtime.open_environment()
    try:
        theirs = register(other.address)
        stream = runtime.invoke({"probe": 1})
        status, headers, _ = call(environment.address, "GET", NEXT_PATH)  # this environment's runtime
        assert status == 200
        status, _, event = call(environment.address, "GET", f"{EXTENSION_API}/event/next", {EXTENSION_ID_HEADER: mine})
        assert status == 200
        assert event == {"eventType": "INVOKE", "deadlineMs": int(headers[DEADLINE_HEADER.lower()]),
                         "requestId": headers[REQUEST_ID_HEADER.lower()],
                         "invokedFunctionArn": headers[FUNCTION_ARN_HEADER.lower()],
                         "tracing": {"type": "X-Amzn-Trace-Id", "value": headers[TRACE_ID_HEADER.lower()]}}
        assert event["requestId"] == stream.invocation.request_id
        for address, identifier in ((other.address, theirs), (environment.address, shutdown_only)):
            with pytest.raises(TimeoutError):  # nothing for them: event/next blocks
                call(address, "GET", f"{EXTENSION_API}/event/next", {EXTENSION_ID_HEADER: identifier}, timeout=1)
    finally:
        runtime.close_environment(other)


@pytest.mark.req("FR-062", "SC-029")
def test_the_stand_in_collector_registers_and_exits_on_shutdown(environment: EnvironmentEndpoint,
                                                                 trace_pipeline: TracePipeline) -> None:
    """Reference, "Shutdown phase": Lambda sends SHUTDOWN (shutdownReason, deadlineMs) to each
    external extension registered for it, which then exits; with external extensions the phase
    lasts at most 2,000 ms. A real extension (the image's stand-in collector) registers by its file
    name and exits 0 on the event, within the deadline."""
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, str(STANDIN)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "AWS_LAMBDA_RUNTIME_API": environment.address,
             "STANDIN_COLLECTOR_UPSTREAM": "http://" + trace_pipeline.receiver.endpoint.split("/")[2],
             "STANDIN_COLLECTOR_LISTEN": f"127.0.0.1:{port}"})
    try:
        assert environment.extensions.wait_registered(1, 30), process.stdout
        assert environment.extensions.registered() == ["collector"]
        deadline_ms = environment.extensions.shutdown("spindown")
        assert process.wait(timeout=10) == 0
        assert time.time() * 1000 <= deadline_ms
        assert 0 < deadline_ms - time.time() * 1000 <= 2000
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


@pytest.mark.req("FR-062")
def test_shutdown_reaches_a_waiting_extension_with_its_reason(environment: EnvironmentEndpoint) -> None:
    """Reference, "Shutdown": `{"eventType": "SHUTDOWN", "shutdownReason": spindown | timeout |
    failure, "deadlineMs"}`; no other reason exists."""
    identifier = register(environment.address)
    deadline_ms = environment.extensions.shutdown("timeout")
    status, headers, event = call(environment.address, "GET", f"{EXTENSION_API}/event/next",
                                  {EXTENSION_ID_HEADER: identifier})
    assert status == 200 and headers["lambda-extension-event-identifier"]
    assert event == {"eventType": "SHUTDOWN", "shutdownReason": "timeout", "deadlineMs": deadline_ms}
    with pytest.raises(ValueError):
        environment.extensions.shutdown("bored")


@pytest.mark.req("FR-062")
def test_init_and_exit_errors_are_accepted_and_kept(environment: EnvironmentEndpoint) -> None:
    """Reference, "Init error" / "Exit error": POST with `Lambda-Extension-Function-Error-Type`,
    202 Accepted; the platform records the error."""
    identifier = register(environment.address, "collector")
    for phase in ("init", "exit"):
        status, _, _ = call(environment.address, "POST", f"{EXTENSION_API}/{phase}/error",
                            {EXTENSION_ID_HEADER: identifier, "Lambda-Extension-Function-Error-Type":
                             f"Extension.{phase.title()}Failed"}, {"errorMessage": "no"})
        assert status == 202
    assert environment.extensions.errors == [("collector", "init", "Extension.InitFailed"),
                                             ("collector", "exit", "Extension.ExitFailed")]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
