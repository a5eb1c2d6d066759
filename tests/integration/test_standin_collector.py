"""The stand-in collector extension (docker/sse/standin-collector/), outside docker.

It runs as a process against a real local Extensions API server (this module's) and forwards OTLP
to a real HTTP receiver; the OTLP comes from the OpenTelemetry SDK's own exporter. Its zip is
reproducible and pinned through the same unpack-layer.sh check as the ADOT layer.
Extensions API: https://docs.aws.amazon.com/lambda/latest/dg/runtimes-extensions-api.html
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import socket
import stat
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from devstack.loopback import LoopbackServer, send_reply
from scripts import sse_image

COLLECTOR = sse_image.STANDIN_DIR / "extensions" / "collector"
UNPACK = sse_image.SSE_DIR / "unpack-layer.sh"
EXTENSION_ID = "3f1c6c5e-5c4e-4c1e-9a55-000000000001"


@dataclass
class ExtensionsApi:
    """The register / event-next half of Lambda's Extensions API; events are queued by the test."""

    port: int = 0
    requests: list[tuple[str, str, dict[str, str], bytes]] = field(default_factory=list)
    events: queue.Queue[dict[str, object]] = field(default_factory=queue.Queue)
    register_status: int = 200
    registered: threading.Event = field(default_factory=threading.Event)


@dataclass
class Receiver:
    """The upstream OTLP receiver: records every request, answers 200 with a fixed body."""

    port: int = 0
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve `handler` on a free loopback port (yielded) for the test's length."""
    server = LoopbackServer.http("127.0.0.1", 0, handler, name="standin-test").start()
    try:
        yield server.port
    finally:
        server.stop()


@pytest.fixture
def extensions_api() -> Iterator[ExtensionsApi]:
    state = ExtensionsApi()

    class Handler(QuietHandler):
        def _record(self) -> bytes:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append((self.command, self.path, dict(self.headers), body))
            return body

        def do_POST(self) -> None:
            self._record()
            assert self.path == "/2020-01-01/extension/register"
            headers = {"Lambda-Extension-Identifier": EXTENSION_ID} if state.register_status == 200 else {}
            reply = json.dumps({"functionName": "sse", "functionVersion": "$LATEST", "handler": "h"}).encode()
            send_reply(self, state.register_status, reply, headers=headers)
            state.registered.set()

        def do_GET(self) -> None:
            self._record()
            event = json.dumps(state.events.get(timeout=30)).encode()
            send_reply(self, 200, event, headers={"Lambda-Extension-Event-Identifier": "e1"})

    with serving(Handler) as state.port:
        yield state


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(QuietHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.requests.append((self.path, dict(self.headers), body))
            reply = ExportTraceServiceRequest().SerializeToString()  # an empty, well-formed OTLP reply
            send_reply(self, 200, reply, "application/x-protobuf")

    with serving(Handler) as state.port:
        yield state


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start_collector(api_port: int, upstream: str, listen_port: int) -> subprocess.Popen[str]:
    env = {"PATH": os.environ["PATH"], "AWS_LAMBDA_RUNTIME_API": f"127.0.0.1:{api_port}",
           "STANDIN_COLLECTOR_UPSTREAM": upstream, "STANDIN_COLLECTOR_LISTEN": f"127.0.0.1:{listen_port}"}
    # Run as Lambda runs an extension: the executable itself (its file name is the extension's name).
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    return subprocess.Popen([str(COLLECTOR)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.req("FR-062", "FR-054", "SC-029")
def test_the_standin_registers_forwards_otlp_unchanged_and_exits_on_shutdown(
        extensions_api: ExtensionsApi, receiver: Receiver) -> None:
    listen = free_port()
    process = start_collector(extensions_api.port, f"http://127.0.0.1:{receiver.port}", listen)
    try:
        assert extensions_api.registered.wait(10), process.stderr
        method, path, headers, body = extensions_api.requests[0]
        assert (method, path) == ("POST", "/2020-01-01/extension/register")
        assert headers["Lambda-Extension-Name"] == "collector"
        assert json.loads(body) == {"events": ["INVOKE", "SHUTDOWN"]}

        extensions_api.events.put({"eventType": "INVOKE", "requestId": "r1", "deadlineMs": 0})
        exporter = OTLPSpanExporter(endpoint=f"http://127.0.0.1:{listen}/v1/traces", timeout=10)
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("standin-test").start_as_current_span("crossed-the-extension"):
            pass
        provider.shutdown()

        assert len(receiver.requests) == 1  # the exporter got the upstream's 200: one request, no retry
        forwarded_path, forwarded_headers, forwarded = receiver.requests[0]
        assert forwarded_path == "/v1/traces"
        assert forwarded_headers["Content-Type"] == "application/x-protobuf"
        spans = ExportTraceServiceRequest.FromString(forwarded).resource_spans[0].scope_spans[0].spans
        assert [span.name for span in spans] == ["crossed-the-extension"]

        extensions_api.events.put({"eventType": "SHUTDOWN", "shutdownReason": "spindown", "deadlineMs": 0})
        assert process.wait(timeout=10) == 0
    finally:
        process.kill()
        process.wait()
    next_calls = [request for request in extensions_api.requests if request[0] == "GET"]
    assert len(next_calls) == 2 and all(request[1] == "/2020-01-01/extension/event/next" for request in next_calls)
    assert all(request[2]["Lambda-Extension-Identifier"] == EXTENSION_ID for request in next_calls)


@pytest.mark.req("FR-062")
def test_the_standin_exits_with_an_error_when_registration_is_refused(
        extensions_api: ExtensionsApi, receiver: Receiver) -> None:
    extensions_api.register_status = 403
    process = start_collector(extensions_api.port, f"http://127.0.0.1:{receiver.port}", free_port())
    _, stderr = process.communicate(timeout=10)
    assert process.returncode != 0 and "register refused (403)" in stderr


@pytest.mark.req("FR-062")
def test_the_standin_refuses_to_start_without_an_upstream(extensions_api: ExtensionsApi) -> None:
    process = start_collector(extensions_api.port, "", free_port())
    _, stderr = process.communicate(timeout=10)
    assert process.returncode != 0 and "STANDIN_COLLECTOR_UPSTREAM" in stderr
    assert not extensions_api.requests  # it never registered


@pytest.mark.req("FR-063", "FR-070", "SC-029")
def test_the_standin_zip_has_the_layer_layout_and_is_pinned_by_its_lock(tmp_path: Path) -> None:
    data = sse_image.standin_zip_bytes()
    assert sse_image.standin_zip_bytes() == data  # reproducible, so a SHA-256 can pin it
    assert hashlib.sha256(data).hexdigest() == sse_image.lock_value(sse_image.STANDIN_LOCK, "LAYER_SHA256")
    zip_path = tmp_path / "collector-layer.zip"
    zip_path.write_bytes(data)
    with zipfile.ZipFile(zip_path) as archive:
        assert sorted(archive.namelist()) == ["collector-config/config.yaml", "extensions/collector"]

    unpacked = subprocess.run(["sh", str(UNPACK), str(zip_path), str(sse_image.STANDIN_LOCK), str(tmp_path / "layer")],
                              capture_output=True, text=True, timeout=30)
    assert unpacked.returncode == 0, unpacked.stderr
    assert (tmp_path / "layer" / "extensions" / "collector").stat().st_mode & stat.S_IXUSR

    wrong = tmp_path / "wrong.lock"
    wrong.write_text(f"LAYER_SHA256={'0' * 64}\n")
    refused = subprocess.run(["sh", str(UNPACK), str(zip_path), str(wrong), str(tmp_path / "refused")],
                             capture_output=True, text=True, timeout=30)
    assert refused.returncode != 0 and not (tmp_path / "refused").exists()
