"""Contract tests of the devstack's Lambda service (`devstack.lambda_`): how it starts a function, how
many invocations run at once and what happens past that, what a warm environment keeps.

Each test names the AWS contract it holds the emulator to, and cites it.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.edge.cloudfront import CloudFrontEdge
from devstack.edge.origin_access import OriginAccess
from devstack.emulator import FunctionUrlBackend
from devstack.lambda_.invocation import invoke_in_process, lambda_environment
from devstack.lambda_.lambda_service import (
    THROTTLES_NAMESPACE,
    LambdaService,
    image_entrypoint,
    runtime_command,
)
from devstack.stack import REPO_ROOT, SRC_ROOT, FunctionSpec, Stack, load_stack
from devstack.xray.pipeline import TracePipeline
from lib.tracing.header import TraceHeader

PROBE = FunctionSpec("probe", "tests.fixtures.probe_handler.lambda_handler", "zip", 128, 30, {}, {}, None)


# -- Fix 1: an image function starts from its image's ENTRYPOINT, the handler as the image command ---
@pytest.mark.req("FR-062", "FR-063")
def test_an_image_function_runs_its_dockerfile_entrypoint_with_the_image_command_as_argv_and_no_handler_env(
    tmp_path: Path,
) -> None:
    """Lambda starts a container image function by running the image's ENTRYPOINT with the image's
    CMD (Terraform: `image_config.command`) as its arguments, and sets no `_HANDLER` for it:
    https://docs.aws.amazon.com/lambda/latest/dg/images-create.html (the runtime interface client is
    the entrypoint, the handler its argument), https://docs.aws.amazon.com/lambda/latest/api/API_ImageConfig.html
    (EntryPoint, Command), https://docs.aws.amazon.com/lambda/latest/dg/configuration-envvars.html#configuration-envvars-runtime
    (`_HANDLER`: the handler location configured on the function, i.e. a zip function's)."""
    sse = load_stack().function("sse_streaming")
    dockerfile = (REPO_ROOT / "docker" / "sse" / "Dockerfile").read_text()
    entrypoint = json.loads(next(line for line in dockerfile.splitlines() if line.startswith("ENTRYPOINT "))
                            .split(None, 1)[1])
    command = runtime_command(sse)
    # the image's own ENTRYPOINT, its paths mapped to this checkout, then the handler from the stack map
    assert len(command) == len(entrypoint) + 1 and command[-1] == sse.handler
    assert command[1] == str(REPO_ROOT / "docker" / "sse" / "bootstrap") and entrypoint[1] == "/var/runtime/bootstrap"
    assert "_HANDLER" not in lambda_environment(sse, {}, "127.0.0.1:2000")
    assert lambda_environment(PROBE, {}, "127.0.0.1:2000")["_HANDLER"] == PROBE.handler
    # the ENTRYPOINT is read from the Dockerfile, not assumed: another image's entrypoint is followed
    other = tmp_path / "Dockerfile"
    other.write_text('FROM scratch\nENTRYPOINT ["python3", "-X", "dev", "/var/runtime/bootstrap"]\n')
    assert image_entrypoint(other)[1:3] == ["-X", "dev"]
    assert image_entrypoint(other)[-1] == str(REPO_ROOT / "docker" / "sse" / "bootstrap")
    other.write_text("FROM scratch\nENTRYPOINT python3 /var/runtime/bootstrap\n")  # shell form: no argv to append to
    with pytest.raises(ValueError):
        image_entrypoint(other)


# -- Fix 3: one invocation per environment, reserved concurrency, 429 past it ------------------------
@pytest.fixture
def reserved_function(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources
                      ) -> Iterator[tuple[LambdaService, CloudFrontEdge, FunctionSpec]]:
    """A Function URL function with reserved concurrency 2 behind the local CloudFront edge."""
    raw = {**load_stack().raw, "functions": {"held": {
        "handler": "tests.fixtures.hold_handler.lambda_handler", "package": "zip", "memory_mb": 128,
        "timeout_s": 30, "reserved_concurrency": 2, "trigger": {"type": "function_url"}, "env": {}}}}
    stack = Stack(raw)
    service = LambdaService(stack, stack_resources, trace_pipeline.daemon.address, moto_server.endpoint,
                            worker_env={"PYTHONPATH": f"{SRC_ROOT}:{REPO_ROOT}"}).start()
    access = OriginAccess.from_stack()  # the edge signs for the Function URL (AWS_IAM) as OAC does
    edge = CloudFrontEdge(None, FunctionUrlBackend(service, access, "held"), None, port=0, origin_access=access).start()
    yield service, edge, stack.function("held")
    edge.stop()
    service.stop()


def _get(edge: CloudFrontEdge, path: str) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=30)
    connection.request("GET", path)
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, {key.lower(): value for key, value in response.getheaders()}, body


def _throttles_datapoints(function_name: str, since: dt.datetime) -> float:
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=THROTTLES_NAMESPACE, MetricName="Throttles",
        Dimensions=[{"Name": "FunctionName", "Value": function_name}],
        StartTime=since - dt.timedelta(minutes=5), EndTime=since + dt.timedelta(hours=1), Period=60,
        Statistics=["Sum"])
    return float(sum(point["Sum"] for point in stats["Datapoints"]))


@pytest.mark.req("FR-085", "FR-090")
def test_past_its_reserved_concurrency_the_function_url_answers_429_too_many_requests_counted_as_throttles(
    reserved_function: tuple[LambdaService, CloudFrontEdge, FunctionSpec],
) -> None:
    """One invocation per execution environment; a function with reserved concurrency N runs at most N
    at once and Lambda refuses the next synchronous invocation with 429 `TooManyRequestsException`,
    counted in the function's `Throttles` metric (AWS/Lambda, per FunctionName):
    https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html,
    https://docs.aws.amazon.com/lambda/latest/dg/configuration-concurrency.html,
    https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (Errors: TooManyRequestsException, 429),
    https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html (a Function URL invokes synchronously),
    https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html (`Throttles`)."""
    service, edge, spec = reserved_function
    since = dt.datetime.now(dt.UTC)
    answers: list[int] = []
    holders = [threading.Thread(target=lambda: answers.append(_get(edge, "/api/v2/stream?hold_s=4")[0]))
               for _ in range(2)]
    for holder in holders:
        holder.start()
    deadline = time.monotonic() + 20
    while service._pools["held"].in_flight < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert service._pools["held"].in_flight == 2  # both held: two environments, one invocation each

    status, headers, body = _get(edge, "/api/v2/stream?hold_s=0")
    assert status == 429
    assert headers["x-amzn-errortype"] == "TooManyRequestsException"
    assert json.loads(body)["Reason"] == "ReservedFunctionConcurrentInvocationLimitExceeded"
    for holder in holders:
        holder.join(30)
    assert answers == [200, 200]
    assert len(service._pools["held"].processes) == 2  # scaled out to exactly the reserved concurrency
    assert service.throttles("held") == 1
    assert _throttles_datapoints(spec.name, since) == 1.0
    # an environment is free again: the next invocation runs
    assert _get(edge, "/api/v2/stream?hold_s=0")[0] == 200
    assert service.throttles("held") == 1


# -- Fix 4: a warm environment keeps its state; our own reset separates invocations ------------------
@pytest.mark.req("FR-059", "SC-026")
def test_a_warm_environment_keeps_the_sdk_context_so_our_own_reset_separates_two_invocations_of_one_trace(
    trace_pipeline: TracePipeline,
) -> None:
    """Lambda reuses a warm execution environment as the last invocation left it and clears nothing
    between invocations (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html:
    objects declared outside the handler, /tmp, background state persist). The X-Ray SDK keeps its
    facade while the trace Root is unchanged (aws_xray_sdk/core/lambda_launcher.py, `_refresh_context`),
    so two invocations of one warm function in one trace (two SNS messages of one ingestion run) would
    share the first one's function segment; `lib.tracing.powertools._start_invocation_context` resets
    it per invocation. This test fails when that reset is removed (or when the emulator clears the SDK's
    entities after each invocation, which hid its absence)."""
    upstream = TraceHeader.new_root()
    _, first = invoke_in_process(PROBE, {}, {}, trace_pipeline.daemon.address, upstream)
    _, second = invoke_in_process(PROBE, {"action": "annotate", "annotations": {"probe_round": 2}}, {},
                                  trace_pipeline.daemon.address, upstream)
    assert first.trace_header.root == second.trace_header.root
    tree = trace_pipeline.tree(upstream.root, expect_at_least=8)
    handlers = {node.document["parent_id"]: node.document for node in tree.find("## lambda_handler")}
    assert set(handlers) == {first.function_segment_id, second.function_segment_id}
    assert handlers[second.function_segment_id]["annotations"]["probe_round"] == 2
    assert "probe_round" not in handlers[first.function_segment_id].get("annotations", {})
