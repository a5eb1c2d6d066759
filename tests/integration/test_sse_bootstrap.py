"""The SSE image's `docker/sse/bootstrap` against AWS's runtime contracts, run as a real process.

- the handler comes from argv[1], the image command Lambda passes after the ENTRYPOINT
  (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html; awslambdaric's
  `LambdaConfigProvider._parse_handler` reads `args[1]`), `_HANDLER` only when none was given;
- one invocation at a time per process: classic Lambda runs one invocation per execution
  environment (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html);
- an invocation error carries `Lambda-Runtime-Function-Error-Type` and the function segment's
  cause in `Lambda-Runtime-Function-XRay-Error-Cause`
  (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html; the shape of awslambdaric's
  `bootstrap.make_xray_fault`: working_directory, exceptions[{message, type, stack}], paths).

The recording Runtime API below is a real HTTP server on loopback that hands out scripted events
and keeps every request the runtime makes, headers included.
"""

from __future__ import annotations

import json
import os
import queue
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from devstack.lambda_.process import RuntimeProcess
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.stack import REPO_ROOT, SRC_ROOT, load_stack

BOOTSTRAP = REPO_ROOT / "docker" / "sse" / "bootstrap"
API = "/2018-06-01/runtime"

PROBE = '''
import time


def handler(event, context):
    if event.get("raise"):
        raise ValueError(event["raise"])
    time.sleep(event.get("sleep_s", 0))
    return {"handled_by": "probe.handler", "event": event}


def other(event, context):
    return {"handled_by": "probe.other"}


class Slow:
    """A streamed response whose body takes `seconds` to produce."""

    def __init__(self, seconds):
        self.seconds = seconds

    def prelude(self):
        return {"statusCode": 200, "headers": {"content-type": "text/plain"}, "cookies": []}

    @property
    def body(self):
        yield b"begin;"
        time.sleep(self.seconds)
        yield b"end"

    def close(self):
        pass


def stream(event, context):
    return Slow(event.get("sleep_s", 0.5))
'''


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


def _peer_closed(connection: socket.socket) -> bool:
    """True once the client closed its end (readable with nothing to read)."""
    readable, _, _ = select.select([connection], [], [], 0)
    return bool(readable) and connection.recv(1, socket.MSG_PEEK) == b""


class RecordingRuntimeApi:
    """A Runtime API that hands out queued events and records every request (one environment)."""

    def __init__(self) -> None:
        self.events: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._answered = threading.Condition(self._lock)
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                api._next(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with api._answered:
                    api.requests.append(Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                                                 body))
                    api._answered.notify_all()
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def address(self) -> str:
        return "{}:{}".format(*self._server.server_address[:2])

    def _next(self, handler: BaseHTTPRequestHandler) -> None:
        end = time.monotonic() + 20
        while True:
            if _peer_closed(handler.connection):  # a terminated environment's long poll: hand it nothing
                return
            try:
                request_id, event = self.events.get(timeout=0.1)
                break
            except queue.Empty:
                if time.monotonic() < end:
                    continue
                handler.send_response(500)
                handler.send_header("Content-Length", "0")
                handler.end_headers()
                return
        payload = json.dumps(event).encode()
        handler.send_response(200)
        for key, value in {"Lambda-Runtime-Aws-Request-Id": request_id,
                           "Lambda-Runtime-Deadline-Ms": str(int((time.time() + 30) * 1000)),
                           "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:123456789012:function:p",
                           "Content-Length": str(len(payload))}.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(payload)

    def wait_for(self, path: str, timeout_s: float = 20) -> Recorded:
        end = time.monotonic() + timeout_s
        with self._answered:
            while True:
                found = [request for request in self.requests if request.path == f"{API}{path}"]
                if found:
                    return found[0]
                if not self._answered.wait(max(0.0, end - time.monotonic())) and time.monotonic() >= end:
                    raise TimeoutError(f"the runtime never posted {path}")

    def __enter__(self) -> RecordingRuntimeApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def task_root(tmp_path: Path) -> Path:
    (tmp_path / "probe.py").write_text(PROBE)
    return tmp_path


def _environment(task_root: Path, address: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(SRC_ROOT),
            "LAMBDA_TASK_ROOT": str(task_root), "AWS_LAMBDA_RUNTIME_API": address, **(extra or {})}


@pytest.fixture
def recording() -> Iterator[RecordingRuntimeApi]:
    with RecordingRuntimeApi() as api:
        yield api


def _launch(argv: list[str], environment: Mapping[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, str(BOOTSTRAP), *argv], env=dict(environment), cwd=str(SRC_ROOT),
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.fixture
def launched() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(5)
        if process.stderr is not None:
            process.stderr.close()


# -- Fix 1: the handler is the image command -------------------------------------------------------
@pytest.mark.req("FR-062")
def test_the_handler_comes_from_the_image_command_without_handler_env(
    task_root: Path, recording: RecordingRuntimeApi, launched: list[subprocess.Popen[bytes]]
) -> None:
    """Lambda starts an image as ENTRYPOINT + command (`image_config.command`) and sets no `_HANDLER`."""
    recording.events.put(("req-1", {"n": 1}))
    launched.append(_launch(["probe.handler"], _environment(task_root, recording.address)))
    answer = recording.wait_for("/invocation/req-1/response")
    assert json.loads(answer.body) == {"handled_by": "probe.handler", "event": {"n": 1}}


@pytest.mark.req("FR-062")
def test_the_image_command_wins_over_handler_env_which_is_only_a_fallback(
    task_root: Path, recording: RecordingRuntimeApi, launched: list[subprocess.Popen[bytes]]
) -> None:
    recording.events.put(("req-argv", {}))
    launched.append(_launch(["probe.other"], _environment(task_root, recording.address, {"_HANDLER": "probe.handler"})))
    assert json.loads(recording.wait_for("/invocation/req-argv/response").body) == {"handled_by": "probe.other"}

    launched[0].terminate()  # that environment is gone: the next event goes to the next one only
    launched[0].wait(5)
    recording.events.put(("req-env", {}))  # a second environment, started without a command
    launched.append(_launch([], _environment(task_root, recording.address, {"_HANDLER": "probe.handler"})))
    assert json.loads(recording.wait_for("/invocation/req-env/response").body)["handled_by"] == "probe.handler"


@pytest.mark.req("FR-018")
def test_without_any_handler_the_runtime_reports_an_init_error_and_exits(
    task_root: Path, recording: RecordingRuntimeApi, launched: list[subprocess.Popen[bytes]]
) -> None:
    process = _launch([], _environment(task_root, recording.address))
    launched.append(process)
    init_error = recording.wait_for("/init/error")
    assert init_error.headers["lambda-runtime-function-error-type"] == "Runtime.MalformedHandlerName"
    assert process.wait(10) == 1


@pytest.mark.req("FR-062")
def test_terraform_passes_the_handler_as_the_image_command() -> None:
    """The image command the bootstrap reads is what Terraform's `image_config.command` sets."""
    main = (REPO_ROOT / "infrastructure" / "terraform" / "modules" / "lambda_functions" / "main.tf").read_text()
    block = main[main.index('dynamic "image_config"'):]
    block = block[: block.index("\n  }\n") + 4]
    assert 'each.value.package == "image" ? [each.value.handler]' in block
    assert "command = [image_config.value]" in block
    assert load_stack().function("sse_streaming").package == "image"


# -- Fix 5: the invocation error carries the function segment's cause -----------------------------
@pytest.mark.req("FR-005", "FR-058", "FR-018")
def test_an_invocation_error_carries_its_type_and_a_bounded_xray_cause(
    task_root: Path, recording: RecordingRuntimeApi, launched: list[subprocess.Popen[bytes]]
) -> None:
    recording.events.put(("req-fail", {"raise": "x" * 5000}))
    launched.append(_launch(["probe.handler"], _environment(task_root, recording.address)))
    error = recording.wait_for("/invocation/req-fail/error")
    assert error.headers["lambda-runtime-function-error-type"] == "ValueError"
    cause = json.loads(error.headers["lambda-runtime-function-xray-error-cause"])
    assert set(cause) == {"working_directory", "exceptions", "paths"}
    assert cause["working_directory"] == str(SRC_ROOT)
    [exception] = cause["exceptions"]
    assert exception["type"] == "ValueError" and len(exception["message"]) == 2048  # FR-058
    assert exception["message"].startswith("xxx") and exception["message"].endswith("...[truncated]")
    assert 1 <= len(exception["stack"]) <= 10
    assert exception["stack"][-1] == {"label": "handler", "path": str(task_root / "probe.py"),
                                      "line": exception["stack"][-1]["line"]}
    assert str(task_root / "probe.py") in cause["paths"]
    body = json.loads(error.body)
    assert body["errorType"] == "ValueError" and len(body["errorMessage"]) == 2048


# -- Fix 3: one invocation at a time per environment ------------------------------------------------
@pytest.mark.req("FR-008")
def test_one_process_serves_one_invocation_at_a_time_whatever_max_concurrency_says(task_root: Path) -> None:
    """Two streams queued for one environment: the second starts only after the first ended, even
    with `AWS_LAMBDA_MAX_CONCURRENCY` set (a Managed Instances variable the stack never uses)."""
    spec = load_stack().function("sse_streaming")
    daemon = "127.0.0.1:9"  # the Runtime API's facades go nowhere: this test reads timings only
    with RuntimeApi(spec, daemon) as runtime:
        environment = _environment(task_root, runtime.address, {"AWS_LAMBDA_MAX_CONCURRENCY": "4"})
        environment.pop("AWS_LAMBDA_RUNTIME_API")
        with RuntimeProcess(runtime, [sys.executable, str(BOOTSTRAP), "probe.stream"], environment):
            calls = [runtime.invoke({"sleep_s": 0.6}, timeout_s=20) for _ in range(2)]
            assert all(call.wait(20) for call in calls)
    first, second = sorted(calls, key=lambda call: call.delivered_at or 0.0)
    assert [b"".join(call.chunks()) for call in calls] == [b"begin;end", b"begin;end"]
    assert first.completed_at is not None and second.delivered_at is not None
    assert second.delivered_at >= first.completed_at - 0.05  # taken only once the first was answered
