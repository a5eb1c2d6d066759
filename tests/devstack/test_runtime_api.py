"""The local Lambda Runtime API (devstack.lambda_.runtime_api), driven by a scripted runtime and by AWS's own
runtime interface client (`awslambdaric`), with the facades read back through the trace pipeline."""

from __future__ import annotations

import base64
import http.client
import json
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.aws.moto_server import MotoServer
from devstack.lambda_.invocation import lambda_environment
from devstack.lambda_.process import RuntimeProcess
from devstack.lambda_.response_stream import FunctionError, ResponseStream
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.lambda_.wire import HTTP_INTEGRATION, PRELUDE_DELIMITER
from devstack.stack import REPO_ROOT, SRC_ROOT, FunctionSpec
from devstack.xray.pipeline import TracePipeline
from lib.tracing.header import TraceHeader, new_entity_id

PROBE = FunctionSpec("probe", "tests.fixtures.probe_handler.lambda_handler", "zip", 256, 30, {}, {}, None)
API = "/2018-06-01/runtime"


@pytest.fixture
def runtime(trace_pipeline: TracePipeline) -> Iterator[RuntimeApi]:
    with RuntimeApi(PROBE, trace_pipeline.daemon.address) as api:
        yield api


class ScriptedRuntime:
    """A runtime written out by hand, byte by byte, as a custom runtime talks to the API."""

    def __init__(self, address: str):
        self.address = address

    def next(self) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(self.address, timeout=10)
        connection.request("GET", f"{API}/invocation/next")
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, {key.lower(): value for key, value in response.getheaders()}, body

    def post(self, path: str, body: bytes, headers: dict[str, str] | None = None) -> int:
        connection = http.client.HTTPConnection(self.address, timeout=10)
        connection.request("POST", f"{API}{path}", body=body, headers=headers or {})
        status = connection.getresponse().status
        connection.close()
        return status

    def open_stream(self, request_id: str, content_type: str = HTTP_INTEGRATION,
                    chunked: bool = True) -> http.client.HTTPConnection:
        connection = http.client.HTTPConnection(self.address, timeout=10)
        connection.putrequest("POST", f"{API}/invocation/{request_id}/response", skip_accept_encoding=True)
        connection.putheader("Lambda-Runtime-Function-Response-Mode", "streaming")
        connection.putheader("Content-Type", content_type)
        if chunked:
            connection.putheader("Transfer-Encoding", "chunked")
        connection.endheaders()
        return connection


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def facade_documents(pipeline: TracePipeline, call: ResponseStream) -> list[dict[str, Any]]:
    return [doc for doc in pipeline.tree(call.invocation.trace_header.root, expect_at_least=2).documents
            if doc.get("origin") in ("AWS::Lambda", "AWS::Lambda::Function")]


@pytest.mark.req("FR-059", "SC-023")
def test_next_hands_out_the_invocation_and_a_buffered_response_completes_it(
    runtime: RuntimeApi, trace_pipeline: TracePipeline
) -> None:
    upstream = TraceHeader.new_root().with_parent(new_entity_id(), sampled=None)
    call = runtime.invoke({"hello": "world"}, upstream=upstream, timeout_s=7)
    scripted = ScriptedRuntime(runtime.address)
    status, headers, body = scripted.next()
    assert status == 200 and json.loads(body) == {"hello": "world"}
    invocation = call.invocation
    assert headers["lambda-runtime-aws-request-id"] == invocation.request_id
    assert abs(int(headers["lambda-runtime-deadline-ms"]) / 1000 - (time.time() + 7)) < 1.5
    trace = TraceHeader.parse(headers["lambda-runtime-trace-id"])
    assert (trace.root, trace.parent, trace.sampled) == (upstream.root, invocation.function_segment_id, True)
    assert headers["lambda-runtime-invoked-function-arn"].endswith(f":function:{PROBE.name}")
    assert scripted.post(f"/invocation/{invocation.request_id}/response", b'{"ok": true}') == 202
    assert call.result(5) == {"ok": True}
    assert call.prelude() == (200, [("content-type", "application/json")])
    facades = {doc["origin"]: doc for doc in facade_documents(trace_pipeline, call)}
    assert facades["AWS::Lambda::Function"]["id"] == invocation.function_segment_id
    assert facades["AWS::Lambda::Function"]["parent_id"] == facades["AWS::Lambda"]["id"]
    # a second answer to the same invocation is refused
    assert scripted.post(f"/invocation/{invocation.request_id}/response", b"{}") == 400
    assert scripted.post("/invocation/not-a-request-id/response", b"{}") == 400


@pytest.mark.req("FR-001")
def test_a_streamed_response_reaches_the_caller_live_prelude_then_body(runtime: RuntimeApi) -> None:
    call = runtime.invoke({}, timeout_s=10)
    scripted = ScriptedRuntime(runtime.address)
    _, headers, _ = scripted.next()
    stream = scripted.open_stream(headers["lambda-runtime-aws-request-id"])
    prelude = json.dumps({"statusCode": 201, "headers": {"content-type": "text/event-stream"},
                          "cookies": ["a=1"]}).encode()
    stream.send(chunk(prelude + PRELUDE_DELIMITER[:3]))  # the delimiter split across two chunks
    stream.send(chunk(PRELUDE_DELIMITER[3:] + b"data: one\n\n"))
    assert call.prelude(5) == (201, [("content-type", "text/event-stream"), ("set-cookie", "a=1")])
    body = call.chunks()
    assert next(body) == b"data: one\n\n"  # relayed before the function wrote anything more
    stream.send(chunk(b"data: two\n\n") + b"0\r\n\r\n")
    assert stream.getresponse().status == 202
    assert list(body) == [b"data: two\n\n"]
    assert call.wait(5) and call.error is None and call.mode == "streaming"
    assert b"".join(call.raw_chunks()) == prelude + PRELUDE_DELIMITER + b"data: one\n\ndata: two\n\n"


@pytest.mark.req("FR-018", "FR-058")
def test_an_error_after_the_body_began_arrives_in_the_trailers(
    runtime: RuntimeApi, trace_pipeline: TracePipeline
) -> None:
    call = runtime.invoke({}, timeout_s=10)
    scripted = ScriptedRuntime(runtime.address)
    _, headers, _ = scripted.next()
    stream = scripted.open_stream(headers["lambda-runtime-aws-request-id"])
    error = base64.b64encode(json.dumps({"errorType": "ClientError", "errorMessage": "x" * 5000}).encode())
    stream.send(chunk(b'{"statusCode":200}' + PRELUDE_DELIMITER + b"partial")
                + b"0\r\nLambda-Runtime-Function-Error-Type: ClientError\r\n"
                + b"Lambda-Runtime-Function-Error-Body: " + error + b"\r\n\r\n")
    assert stream.getresponse().status == 202
    assert call.wait(5)
    assert b"".join(call.chunks()) == b"partial"
    assert call.error is not None and call.error.error_type == "ClientError"
    assert len(call.error.message) == 2048  # bounded (FR-058)
    function_segment = next(doc for doc in facade_documents(trace_pipeline, call)
                            if doc["origin"] == "AWS::Lambda::Function")
    assert function_segment["fault"] is True
    # The trailers carry no X-Ray cause (runtimes-custom.html#runtimes-custom-response-streaming): the
    # function segment's cause comes only from Lambda-Runtime-Function-XRay-Error-Cause (issue 15, fix 5).
    assert "cause" not in function_segment


@pytest.mark.req("FR-018")
def test_an_error_before_any_response_is_a_502_for_the_caller(runtime: RuntimeApi) -> None:
    call = runtime.invoke({}, timeout_s=10)
    scripted = ScriptedRuntime(runtime.address)
    _, headers, _ = scripted.next()
    body = json.dumps({"errorMessage": "bad event", "errorType": "ValidationError", "stackTrace": []}).encode()
    status = scripted.post(f"/invocation/{headers['lambda-runtime-aws-request-id']}/error", body,
                           {"Lambda-Runtime-Function-Error-Type": "ValidationError"})
    assert status == 202
    assert call.prelude(5)[0] == 502
    with pytest.raises(FunctionError) as raised:
        call.result(5)
    assert (raised.value.error_type, raised.value.message) == ("ValidationError", "bad event")
    assert json.loads(b"".join(call.chunks()))["errorType"] == "ValidationError"


@pytest.mark.req("FR-018")
def test_bad_framing_and_unchunked_streams_are_refused(runtime: RuntimeApi) -> None:
    scripted = ScriptedRuntime(runtime.address)
    first = runtime.invoke({}, timeout_s=10)
    _, headers, _ = scripted.next()
    stream = scripted.open_stream(headers["lambda-runtime-aws-request-id"])
    stream.send(b"zz\r\nnot hex\r\n")
    assert stream.getresponse().status == 400
    assert first.wait(5) and first.error is not None and first.error.error_type == "Runtime.InvalidResponse"

    second = runtime.invoke({}, timeout_s=10)
    _, headers, _ = scripted.next()
    unchunked = scripted.open_stream(headers["lambda-runtime-aws-request-id"], chunked=False)
    assert unchunked.getresponse().status == 400
    assert second.wait(5) and second.error is not None
    assert runtime.stats.protocol_errors >= 2


@pytest.mark.req("FR-085")
def test_a_caller_that_goes_away_is_not_told_to_the_function_which_streams_on_until_it_returns(
    runtime: RuntimeApi,
) -> None:
    """Lambda does not tell a streaming function that its client left: every write succeeds, the
    invocation ends when the function ends its response (no reset connection, no error)."""
    call = runtime.invoke({}, timeout_s=10)
    scripted = ScriptedRuntime(runtime.address)
    _, headers, _ = scripted.next()
    stream = scripted.open_stream(headers["lambda-runtime-aws-request-id"], content_type="text/event-stream")
    stream.send(chunk(b"data: first\n\n"))
    assert next(call.chunks()) == b"data: first\n\n"
    call.close()  # the browser went away
    for _ in range(50):  # well past what a socket buffer would hide of a reset connection
        stream.send(chunk(b"data: more\n\n" * 64))
        time.sleep(0.005)
    assert not call.completed  # still running: nobody stopped it
    stream.send(b"0\r\n\r\n")
    assert stream.getresponse().status == 202
    assert call.wait(5) and call.disconnected and call.error is None and runtime.stats.responses >= 1


@pytest.mark.req("FR-055")
def test_an_invocation_past_its_deadline_times_out(runtime: RuntimeApi, trace_pipeline: TracePipeline) -> None:
    call = runtime.invoke({}, timeout_s=0.3)
    assert call.wait(5)
    assert call.error is not None and call.error.error_type == "Sandbox.Timedout"
    assert runtime.stats.timeouts == 1
    function_segment = next(doc for doc in facade_documents(trace_pipeline, call)
                            if doc["origin"] == "AWS::Lambda::Function")
    assert function_segment["fault"] is True


@pytest.mark.req("FR-056")
def test_an_unsampled_invocation_says_so_and_writes_no_facade(
    runtime: RuntimeApi, trace_pipeline: TracePipeline
) -> None:
    upstream = TraceHeader.new_root().with_parent(new_entity_id(), sampled=False)
    call = runtime.invoke({}, upstream=upstream, timeout_s=5)
    scripted = ScriptedRuntime(runtime.address)
    _, headers, _ = scripted.next()
    assert TraceHeader.parse(headers["lambda-runtime-trace-id"]).sampled is False
    assert scripted.post(f"/invocation/{call.invocation.request_id}/response", b"null") == 202
    assert call.result(5) is None
    assert trace_pipeline.documents(upstream.root) == []


@pytest.mark.req("FR-018")
def test_an_init_error_fails_the_pending_and_later_invocations(runtime: RuntimeApi) -> None:
    pending = runtime.invoke({}, timeout_s=10)
    scripted = ScriptedRuntime(runtime.address)
    body = json.dumps({"errorMessage": "No module named 'x'", "errorType": "Runtime.ImportModuleError"}).encode()
    assert scripted.post("/init/error", body, {"Lambda-Runtime-Function-Error-Type": "Runtime.ImportModuleError"}) \
        == 202
    assert runtime.init_error is not None and runtime.init_error.error_type == "Runtime.ImportModuleError"
    assert pending.wait(5) and pending.error is not None and pending.error.error_type == "Runtime.InitError"
    later = runtime.invoke({})
    assert later.completed and later.error is not None and later.error.error_type == "Runtime.InitError"


def test_stopping_fails_the_pending_invocations_and_refuses_later_ones_at_once(trace_pipeline: TracePipeline) -> None:
    """A delivery racing the stack's shutdown must not wait out the function's timeout."""
    runtime = RuntimeApi(PROBE, trace_pipeline.daemon.address).start()
    pending = runtime.invoke({})
    runtime.stop()
    assert pending.completed and pending.error is not None and pending.error.error_type == "Runtime.Stopped"
    later = runtime.invoke({})
    assert later.completed and later.error is not None and later.error.error_type == "Runtime.Stopped"
    with pytest.raises(FunctionError, match="stopped"):
        later.result(timeout_s=0.1)


# -- AWS's runtime interface client, as the devstack runs the batch functions -----------------------
@pytest.fixture
def awslambdaric(runtime: RuntimeApi, trace_pipeline: TracePipeline, moto_server: MotoServer
                 ) -> Iterator[RuntimeProcess]:
    environment = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), **moto_server.environment(),
                   **lambda_environment(PROBE, {}, trace_pipeline.daemon.address), "PYTHONPATH": str(SRC_ROOT)}
    process = RuntimeProcess(runtime, [sys.executable, "-m", "awslambdaric", PROBE.handler], environment,
                             cwd=REPO_ROOT).start()
    yield process
    process.stop()


@pytest.mark.req("FR-029", "FR-059", "SC-026")
def test_awslambdaric_runs_a_batch_handler_against_it_warm_invocations_in_their_own_traces(
    runtime: RuntimeApi, awslambdaric: RuntimeProcess, trace_pipeline: TracePipeline
) -> None:
    first = runtime.invoke({"action": "ok"}, timeout_s=20)
    assert "tables" in first.result()
    second = runtime.invoke({"action": "annotate", "annotations": {"probe_round": 2}}, timeout_s=10)
    assert "tables" in second.result()
    for call in (first, second):
        tree = trace_pipeline.tree(call.invocation.trace_header.root, expect_at_least=4)
        handler = tree.find("## lambda_handler")[0].document
        assert handler["parent_id"] == call.invocation.function_segment_id
    assert tree.find("## lambda_handler")[0].document["annotations"]["probe_round"] == 2
    failed = runtime.invoke({"action": "raise", "message": "boom"}, timeout_s=10)
    with pytest.raises(FunctionError) as raised:
        failed.result()
    assert raised.value.error_type == "RuntimeError" and raised.value.message == "boom"


@pytest.mark.req("FR-018")
def test_concurrent_invocations_are_each_answered_once(runtime: RuntimeApi) -> None:
    """Several runtime processes polling one Runtime API (one environment each): every invocation goes to one."""
    calls = [runtime.invoke({"n": n}, timeout_s=10) for n in range(20)]
    served: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        scripted = ScriptedRuntime(runtime.address)
        for _ in range(5):
            _, headers, body = scripted.next()
            with lock:
                served.append(json.loads(body)["n"])
            scripted.post(f"/invocation/{headers['lambda-runtime-aws-request-id']}/response", body)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert sorted(served) == list(range(20))
    assert [call.result(5)["n"] for call in calls] == list(range(20))


@pytest.mark.req("FR-062")
def test_init_ends_when_the_runtime_and_every_extension_first_ask_for_their_next_event(runtime: RuntimeApi) -> None:
    """What benchmark 7 reads as the end of Lambda's Init phase (lambda-runtime-environment.html: it ends
    when the runtime and each extension have sent a Next request): nothing before, then each first ask."""
    connection = http.client.HTTPConnection(runtime.address, timeout=10)
    connection.request("POST", "/2020-01-01/extension/register", body=json.dumps({"events": ["SHUTDOWN"]}),
                       headers={"Lambda-Extension-Name": "collector"})
    response = connection.getresponse()
    response.read()
    identifier = response.getheader("Lambda-Extension-Identifier")
    connection.close()
    assert response.status == 200 and identifier
    assert runtime.extensions.ready_at() is None and runtime.stats.first_next_at is None  # registered, not ready

    asked = time.monotonic()
    waiting = http.client.HTTPConnection(runtime.address, timeout=10)
    threading.Thread(target=lambda: waiting.request("GET", "/2020-01-01/extension/event/next",
                                                    headers={"Lambda-Extension-Identifier": identifier}),
                     daemon=True).start()
    deadline = time.monotonic() + 5
    while runtime.extensions.ready_at() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    extension_ready = runtime.extensions.ready_at()
    assert extension_ready is not None and extension_ready >= asked
    assert runtime.stats.first_next_at is None  # the runtime has not asked yet

    call = runtime.invoke({"n": 1}, timeout_s=5)
    scripted = ScriptedRuntime(runtime.address)
    assert scripted.next()[0] == 200
    first_next = runtime.stats.first_next_at
    assert first_next is not None and first_next >= extension_ready
    scripted.post(f"/invocation/{call.invocation.request_id}/response", b"{}")
    runtime.invoke({"n": 2}, timeout_s=5)
    assert scripted.next()[0] == 200
    assert runtime.stats.first_next_at == first_next  # the first ask only
    runtime.extensions.stop()
    waiting.close()
