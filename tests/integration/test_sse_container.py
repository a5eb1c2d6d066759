"""The SSE contract tests against the function running *as its container*, the way the devstack runs it
(devstack.lambda_.container): the image built from the committed Dockerfile (the `image` fixture of
this directory's conftest: one engine, one cached build per session), started as Lambda starts it:
extension init (the stand-in collector registers through the devstack's Extensions API), then the
ENTRYPOINT with the handler as its argument, read-only root, /tmp, the non-root user, host network.

The same contracts as test_sse_stream.py checks on the process runner: the prelude and the stream,
the stream's spans in the invocation's trace under the function segment, the bounded lifetime of an
abandoned stream. The function's only OTLP endpoint is the extension's port inside the container, so
every span read back here crossed the container boundary through the extension. A machine that
cannot run dockerd fails here with the reason (conftest's `engine`), it does not skip.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.lambda_.container import ContainerImage, ContainerRuntime, container_environment
from devstack.lambda_.events import function_url_event
from devstack.lambda_.invocation import lambda_environment
from devstack.lambda_.response_stream import ResponseStream
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.lambda_.wire import PRELUDE_DELIMITER
from devstack.xray.collector_config import load_indexed_attributes
from devstack.xray.otlp_receiver import OtlpReceiver
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import document_problems
from scripts import sse_image
from scripts.docker_engine import Engine
from tests.integration.test_sse_stream import (
    FAST,
    SPEC,
    Collector,
    RecordingSink,
    expected_frame,
    parse_frames,
    read_until,
    seed,
    upstream_header,
)

# The image build (warm: about a minute and a half) is the session's; each container starts in seconds.
pytestmark = pytest.mark.timeout(1800)
USER_ID = "10001"  # the Dockerfile's non-root user


@pytest.fixture(scope="module")
def collector(trace_pipeline: TracePipeline) -> Iterator[Collector]:
    """The devstack's receiver, the extension's upstream (recording what arrives, for each trace)."""
    sink = RecordingSink(trace_pipeline.sink)
    receiver = OtlpReceiver(sink, load_indexed_attributes()).start()  # type: ignore[arg-type]
    yield Collector(receiver, sink)
    receiver.stop()


@pytest.fixture(scope="module")
def container_image(engine: Engine, image: sse_image.Built) -> ContainerImage:
    entrypoint = json.loads(sse_image.docker("image", "inspect", "--format", "{{json .Config.Entrypoint}}",
                                             image.tag).stdout)
    return ContainerImage(engine, image.tag, entrypoint, image.base.how)


class SseContainer:
    """The SSE function: a local Runtime API and one execution environment, the container."""

    def __init__(self, image: ContainerImage, pipeline: TracePipeline, moto: MotoServer, resources: Resources,
                 receiver_endpoint: str, overrides: Mapping[str, str]):
        self.runtime = RuntimeApi(SPEC, pipeline.daemon.address)
        resolved = {name: resources.resolve(value) for name, value in SPEC.env.items()}
        environment = {**moto.environment(),
                       **lambda_environment(SPEC, {**resolved, **FAST, **overrides}, pipeline.daemon.address)}
        self.container = ContainerRuntime(self.runtime, image, environment, receiver_endpoint)

    def start(self) -> SseContainer:
        self.runtime.start()
        self.container.start()
        return self

    def stop(self) -> None:
        self.container.stop()
        self.runtime.stop()

    def open(self, path: str = "/api/v2/stream", headers: Mapping[str, str] | None = None,
             timeout_s: float = 2.5) -> ResponseStream:
        return self.runtime.invoke(function_url_event("GET", path, headers), upstream=upstream_header(),
                                   timeout_s=timeout_s)


@pytest.fixture(scope="module")
def start_container(container_image: ContainerImage, trace_pipeline: TracePipeline, moto_server: MotoServer,
                    stack_resources: Resources, collector: Collector) -> Callable[..., Any]:
    @contextmanager
    def start(overrides: Mapping[str, str] | None = None) -> Iterator[SseContainer]:
        environment = SseContainer(container_image, trace_pipeline, moto_server, stack_resources,
                                   collector.receiver.endpoint, overrides or {}).start()
        try:
            warm = environment.open("/api/v2/stream/status", timeout_s=60)  # the cold start, not on a deadline
            assert warm.prelude(60)[0] == 200, list(environment.container.output)
            yield environment
        finally:
            environment.stop()

    return start


@pytest.fixture(scope="module")
def sse(start_container: Callable[..., Any]) -> Iterator[SseContainer]:
    with start_container() as environment:
        yield environment


@pytest.fixture(scope="module")
def news_table(stack_resources: Resources) -> Any:
    return boto3.resource("dynamodb").Table(stack_resources.tables["news"])


# -- the environment itself -----------------------------------------------------------------------
@pytest.mark.req("FR-062", "FR-069", "SC-029")
def test_the_container_starts_as_lambda_starts_it_extension_first_then_the_entrypoint(sse: SseContainer) -> None:
    """Extension init before runtime init (runtimes-extensions-api.html, "Init phase"); the runtime is
    the image's ENTRYPOINT with the handler as its argument, the image's user, read-only root."""
    container = sse.container
    assert container.extensions == ["/opt/extensions/collector"]
    assert container.endpoint is not None and container.endpoint.extensions.registered() == ["collector"]
    inspect = subprocess.run(["docker", "inspect", "--format",
                              "{{.HostConfig.ReadonlyRootfs}} {{json .HostConfig.Tmpfs}} {{.Config.User}} "
                              "{{.HostConfig.NetworkMode}}", container.name],
                             capture_output=True, text=True, timeout=60, check=True).stdout.split()
    assert inspect == ["true", '{"/tmp":""}', USER_ID, "host"]
    # The container's processes, read from its /proc: uid and argv of each.
    listing = ("import pathlib\nfor p in pathlib.Path('/proc').glob('[0-9]*'):\n"
               "    uid = next(l.split()[1] for l in (p / 'status').read_text().splitlines() if l.startswith('Uid:'))\n"
               "    print(uid, *(p / 'cmdline').read_bytes().decode().split('\\0')[:-1])")
    processes = subprocess.run(["docker", "exec", container.name, "python3", "-c", listing], capture_output=True,
                               text=True, timeout=60, check=True).stdout
    runtime_line = next(line for line in processes.splitlines() if "/var/runtime/bootstrap" in line)
    assert runtime_line.split() == [USER_ID, "python3", "/var/runtime/bootstrap", sse_image.handler_command()]


# -- the contracts, through the container -----------------------------------------------------------
@pytest.mark.req("FR-001", "FR-088", "FR-089", "FR-090", "FR-069")
def test_the_prelude_and_the_stream_reach_the_client_from_the_container(sse: SseContainer, news_table: Any) -> None:
    call = sse.open(timeout_s=3.0)
    status, headers = call.prelude(30)
    assert status == 200 and dict(headers)["content-type"].startswith("text/event-stream")
    assert dict(headers)["x-amzn-trace-id"] == f"Root={call.invocation.trace_header.root}"
    item = seed(news_table, "CONT", "positive", 0.42)
    read_until(call, lambda body: False)
    assert call.wait(10) and call.error is None
    raw = b"".join(call.raw_chunks())
    prelude_end = raw.index(PRELUDE_DELIMITER)
    assert json.loads(raw[:prelude_end]) == {"statusCode": 200, "headers": dict(headers), "cookies": []}
    body = raw[prelude_end + len(PRELUDE_DELIMITER):]
    frames = parse_frames(body)
    assert frames[0]["event"] == "heartbeat" and frames[0]["retry"] == "1500"
    assert body.count(expected_frame(item)) == 1
    assert json.loads(frames[-1]["data"]) == {"reason": "deadline", "reconnect_after_ms": 0}


@pytest.mark.req("FR-054", "FR-059", "FR-060", "SC-023", "SC-029")
def test_the_streams_spans_cross_the_container_through_the_extension_into_the_invocations_trace(
        sse: SseContainer, news_table: Any, trace_pipeline: TracePipeline, collector: Collector) -> None:
    endpoint = sse.container.endpoint
    assert endpoint is not None
    exported_to = container_environment({}, endpoint.address, "127.0.0.1:1", collector.receiver.endpoint)
    assert exported_to["STANDIN_COLLECTOR_UPSTREAM"] != exported_to["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    call = sse.open()
    call.prelude(30)
    seed(news_table, "CROSS", "negative", -0.3)
    read_until(call, lambda body: False)
    assert call.error is None
    invocation = call.invocation
    root = invocation.trace_header.root
    tree = trace_pipeline.tree(root, expect_at_least=8)
    assert document_problems(tree) == [] and {doc["trace_id"] for doc in tree.documents} == {root}
    assert tree.find("## lambda_handler")[0].document["parent_id"] == invocation.function_segment_id
    stream = tree.find("sse.global_stream")[0].document
    assert stream["parent_id"] == invocation.function_segment_id  # under the function segment
    assert stream["annotations"]["connection_id"] == invocation.request_id
    polls = tree.find("sse.poll")
    assert polls and all(poll.document["parent_id"] == stream["id"] for poll in polls)
    # The spans came in through the receiver the extension forwards to, not straight from the function.
    arrived = {doc["name"] for doc in collector.sink.documents(root)}
    assert {"sse.global_stream", "sse.poll", "sse.dispatch"} <= arrived


@pytest.mark.req("FR-085", "FR-090", "SC-024")
def test_an_abandoned_stream_in_the_container_ends_itself_at_its_lifetime(
        start_container: Callable[..., Any], news_table: Any, collector: Collector) -> None:
    with start_container({"SSE_STREAM_LIFETIME_S": "1.5"}) as environment:
        call = environment.open(timeout_s=10.0)
        call.prelude(30)
        item = seed(news_table, "GONE2")
        read_until(call, lambda body: expected_frame(item) in body)
        call.close()  # the client left; Lambda does not tell the function
        assert not call.wait(0.3)
        assert call.wait(8) and call.error is None
        assert call.delivered_at is not None and call.completed_at is not None
        assert 1.5 <= call.completed_at - call.delivered_at < 5.0
        raw = b"".join(call.raw_chunks())
        final = parse_frames(raw[raw.index(PRELUDE_DELIMITER) + len(PRELUDE_DELIMITER):])[-1]
        assert final["event"] == "reconnect" and json.loads(final["data"])["reason"] == "lifetime"
        container = environment.container
    # At stop the extension got SHUTDOWN and exited 0 within the Shutdown phase's 2 s.
    assert container.shutdown_outcomes() == [0], list(container.output)
    stream = next(doc for doc in collector.sink.documents(call.invocation.trace_header.root)
                  if doc["name"] == "sse.global_stream")
    assert stream["annotations"]["end_reason"] == "lifetime"
