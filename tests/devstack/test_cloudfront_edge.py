"""The devstack gateway on a free port: the edge rule, CORS, the live relay of a stream, static files.

The backends here are recording doubles of the gateway's two protocols (ApiBackend, StreamBackend);
the gateway with the real functions behind it is exercised by test_cli.py and tests/e2e.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from aws_lambda_powertools.utilities.data_classes import LambdaFunctionUrlEvent

from devstack.edge.cloudfront import CloudFrontEdge, EdgeRequest, EdgeResponse
from devstack.lambda_.events import function_url_event
from devstack.loopback import PortInUseError
from lib.tracing.header import TraceHeader

ROOT = "1-6760f3a1-0a1b2c3d4e5f60718293a4b5"
PARENT = "53995c3f42cd8ad8"


class RecordingApi:
    def __init__(self) -> None:
        self.requests: list[EdgeRequest] = []

    def handle(self, request: EdgeRequest) -> EdgeResponse:
        self.requests.append(request)
        return EdgeResponse(200, [("Content-Type", "application/json")], b'{"status": "ok"}')


class GatedStream:
    """A stream whose chunks are released one at a time by the test."""

    def __init__(self, chunks: list[bytes]):
        self.status = 200
        self.headers = [("Content-Type", "text/event-stream")]
        self._chunks = chunks
        self.release = [threading.Event() for _ in chunks]
        self.closed = threading.Event()

    def chunks(self) -> Iterator[bytes]:
        for chunk, gate in zip(self._chunks, self.release, strict=True):
            assert gate.wait(10)
            yield chunk

    def close(self) -> None:
        self.closed.set()


class RecordingStreams:
    def __init__(self, reply: GatedStream):
        self.reply = reply
        self.requests: list[EdgeRequest] = []

    def open(self, request: EdgeRequest) -> GatedStream:
        self.requests.append(request)
        return self.reply


@pytest.fixture
def dist(tmp_path: Path) -> Path:
    (tmp_path / "dist" / "assets").mkdir(parents=True)
    (tmp_path / "dist" / "index.html").write_text("<!doctype html><title>dashboard</title>")
    (tmp_path / "dist" / "assets" / "app.js").write_text("console.log('app')")
    (tmp_path / "secret.txt").write_text("outside the frontend")
    return tmp_path / "dist"


@pytest.fixture
def api() -> RecordingApi:
    return RecordingApi()


@pytest.fixture
def streams() -> RecordingStreams:
    return RecordingStreams(GatedStream([b"retry: 3000\n\n", b"id: 1\nevent: heartbeat\ndata: {}\n\n"]))


@pytest.fixture
def gateway(api: RecordingApi, streams: RecordingStreams, dist: Path) -> Iterator[CloudFrontEdge]:
    server = CloudFrontEdge(api, streams, dist, port=0).start()
    yield server
    server.stop()


@pytest.mark.req("FR-035")
def test_the_edge_removes_the_clients_sampling_decision_and_keeps_root_and_parent(
        gateway: CloudFrontEdge, api: RecordingApi) -> None:
    response = requests.get(f"{gateway.url}/api/v2/health",
                            headers={"X-Amzn-Trace-Id": f"Root={ROOT};Parent={PARENT};Sampled=1"}, timeout=5)

    assert response.status_code == 200
    [seen] = api.requests
    assert seen.upstream == TraceHeader(root=ROOT, parent=PARENT, sampled=None)
    forwarded = [value for key, value in seen.headers if key.lower() == "x-amzn-trace-id"]
    assert forwarded == [f"Root={ROOT};Parent={PARENT}"]


@pytest.mark.req("FR-035")
def test_the_stream_route_gets_the_same_edge_rule(gateway: CloudFrontEdge, streams: RecordingStreams) -> None:
    for gate in streams.reply.release:
        gate.set()
    response = requests.get(f"{gateway.url}/api/v2/stream",
                            headers={"X-Amzn-Trace-Id": f"Root={ROOT};Parent={PARENT};Sampled=0"}, timeout=5)

    assert response.status_code == 200
    assert streams.requests[0].upstream == TraceHeader(root=ROOT, parent=PARENT, sampled=None)


@pytest.mark.req("FR-035")
@pytest.mark.parametrize(("header", "forwarded"), [
    ("Root=1-xyz", "Root=1-xyz"), ("Parent=53995c3f42cd8ad8", "Parent=53995c3f42cd8ad8"),
    ("Root=" + ROOT + ";Sampled=yes", "Root=" + ROOT), ("x" * 300, "x" * 300)])
def test_a_malformed_trace_header_passes_the_edge_without_sampled_and_the_origin_reads_none(
        gateway: CloudFrontEdge, api: RecordingApi, header: str, forwarded: str) -> None:
    """CloudFront runs strip_sampling.js and forwards what it returns (never a 400); the origin starts a new
    trace for a header it cannot read (issue 15, point 7)."""
    response = requests.get(f"{gateway.url}/api/v2/health", headers={"X-Amzn-Trace-Id": header}, timeout=5)

    assert response.status_code == 200
    [seen] = api.requests
    assert [v for k, v in seen.headers if k.lower() == "x-amzn-trace-id"] == [forwarded]
    assert seen.upstream is None or seen.upstream.sampled is None


@pytest.mark.req("FR-015", "FR-082", "SC-037")
def test_the_function_url_answers_preflight_with_the_trace_headers_allowed_and_exposed(gateway: CloudFrontEdge) -> None:
    response = requests.options(f"{gateway.url}/api/v2/configurations/abc/stream", timeout=5, headers={
        "Origin": "http://localhost:5173", "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-amzn-trace-id,last-event-id,x-sse-session-id"})

    assert response.status_code == 204
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"x-amzn-trace-id", "last-event-id", "x-sse-session-id", "x-sse-previous-trace-id",
            "x-sse-connection-sequence", "authorization"} <= allowed
    exposed = {h.strip().lower() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert "x-amzn-trace-id" in exposed
    assert response.headers["Access-Control-Allow-Origin"] == "http://localhost:5173"


@pytest.mark.req("FR-082")
def test_a_stream_is_relayed_chunk_by_chunk_with_the_trace_id_exposed(gateway: CloudFrontEdge,
                                                                      streams: RecordingStreams) -> None:
    reply = streams.reply
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=10)
    connection.request("GET", "/api/v2/stream", headers={"X-Amzn-Trace-Id": f"Root={ROOT};Parent={PARENT}"})
    reply.release[0].set()
    response = connection.getresponse()

    assert response.status == 200
    assert response.getheader("x-amzn-trace-id") == f"Root={ROOT}"
    assert "x-amzn-trace-id" in response.getheader("Access-Control-Expose-Headers", "")
    # The first frame is readable while the function has not written the second one yet: a live relay.
    assert response.read1(64) == b"retry: 3000\n\n"
    reply.release[1].set()
    assert response.read() == b"id: 1\nevent: heartbeat\ndata: {}\n\n"
    assert reply.closed.wait(5)
    connection.close()


class EndlessStream(GatedStream):
    """A stream that never ends by itself (heartbeats), as an SSE stream until its deadline."""

    def chunks(self) -> Iterator[bytes]:
        yield b"retry: 3000\n\n"
        while not self.closed.is_set():
            time.sleep(0.01)
            yield b": heartbeat\n\n"


def test_a_client_that_goes_away_releases_the_stream(api: RecordingApi, dist: Path) -> None:
    streams = RecordingStreams(EndlessStream([]))
    server = CloudFrontEdge(api, streams, dist, port=0).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as client:
            client.sendall(b"GET /api/v2/stream HTTP/1.1\r\nHost: local\r\n\r\n")
            received = b""
            while b"retry: 3000" not in received:
                received += client.recv(4096)
        # The relay notices the closed socket on a later write and releases the invocation.
        assert streams.reply.closed.wait(5)
    finally:
        server.stop()


@pytest.mark.req("FR-035")
def test_a_method_the_stream_behaviour_does_not_allow_is_a_cloudfront_403(gateway: CloudFrontEdge,
                                                                          streams: RecordingStreams) -> None:
    response = requests.post(f"{gateway.url}/api/v2/stream", data=b"x", timeout=5)
    assert response.status_code == 403
    assert response.headers["X-Cache"] == "Error from cloudfront"
    assert streams.requests == []


def test_the_built_frontend_is_served_at_the_root_and_nothing_outside_it(gateway: CloudFrontEdge) -> None:
    index = requests.get(f"{gateway.url}/", timeout=5)
    script = requests.get(f"{gateway.url}/assets/app.js", timeout=5)
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=5)
    connection.request("GET", "/../secret.txt")  # sent as is: no client-side normalisation
    escape = connection.getresponse()
    escape.read()
    connection.close()

    assert index.status_code == 200 and "dashboard" in index.text
    assert index.headers["Content-Type"] == "text/html"
    assert script.status_code == 200 and "javascript" in script.headers["Content-Type"]
    assert escape.status == 404


def test_an_unbuilt_frontend_says_how_to_build_it(api: RecordingApi, streams: RecordingStreams,
                                                  tmp_path: Path) -> None:
    server = CloudFrontEdge(api, streams, tmp_path / "missing-dist", port=0).start()
    try:
        response = requests.get(f"{server.url}/", timeout=5)
    finally:
        server.stop()
    assert response.status_code == 503
    assert "make frontend-build" in response.text


def test_a_taken_port_is_a_clear_error(api: RecordingApi, streams: RecordingStreams, dist: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{port} is already in use"):
            CloudFrontEdge(api, streams, dist, port=port)


def test_the_function_url_event_is_what_powertools_parses() -> None:
    request = EdgeRequest("GET", "/api/v2/configurations/a1/stream", "tickers=AAPL&tickers=MSFT",
                          [("Authorization", "Bearer t"), ("X-Amzn-Trace-Id", f"Root={ROOT}"), ("Accept", "a"),
                           ("accept", "b")], b"", "127.0.0.1", TraceHeader(ROOT))

    event = LambdaFunctionUrlEvent(function_url_event(request.method, request.path, request.headers, request.query,
                                                    request.body, request.source_ip))

    assert event.request_context.http.method == "GET"
    assert event.path == "/api/v2/configurations/a1/stream"
    assert event.headers["authorization"] == "Bearer t"
    assert event.headers["accept"] == "a,b"
    assert event.query_string_parameters == {"tickers": "AAPL,MSFT"}
    assert event.raw_event["requestContext"]["http"]["sourceIp"] == "127.0.0.1"
