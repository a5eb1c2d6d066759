"""Browser end-to-end fixtures: `python -m devstack up` on free ports, Debian's headless Chromium, and a
TCP proxy between the two that the test can use to cut a live stream the way a network does.

Playwright's own browser download cannot work here: Chromium is Debian's (`make chromium`).
"""

from __future__ import annotations

import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from devstack.demo.scenario import DEMO_STREAM_LIFETIME_S
from devstack.xray.trace_reader import TraceTree, read_traces
from tests.fixtures.local_stack import REPO_ROOT, devstack_up

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
FRONTEND_DIST = REPO_ROOT / "frontend" / "dist"


@dataclass
class RunningStack:
    gateway: str
    aws_endpoint: str
    directory: Path
    process: subprocess.Popen[bytes]

    def xray(self) -> Any:
        return boto3.client("xray", endpoint_url=self.aws_endpoint, region_name="us-east-1",
                            aws_access_key_id="testing", aws_secret_access_key="testing")

    def trace(self, trace_id: str, until: Callable[[TraceTree], bool], timeout_s: float = 30.0) -> TraceTree:
        """The trace as the X-Ray API returns it, once `until(tree)` holds."""
        xray = self.xray()
        end = time.monotonic() + timeout_s
        last: TraceTree | None = None
        while time.monotonic() < end:
            trees = read_traces(xray, [trace_id])
            if trees:
                last = trees[0]
                if until(last):
                    return last
            time.sleep(0.3)
        found = [d.get("name") for d in last.documents] if last else []
        raise AssertionError(f"trace {trace_id} never met the condition; it holds {found}")


@pytest.fixture(scope="session")
def e2e_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """The local stack as `make up` runs it: ingestion every 3 s, a new headline every 2 s."""
    if not (FRONTEND_DIST / "index.html").is_file():
        pytest.fail("frontend/dist is not built: run `make frontend-build` (make test-e2e does it)")
    directory = tmp_path_factory.mktemp("e2e-stack")
    with devstack_up(
            directory, "--schedule", "ingestion=3", "--schedule", "metrics=0", "--schedule", "canary=0",
            "--feed-interval", "2",
            # Lambda reports no client hang-up, so a closed tab's stream holds its environment until its
            # lifetime ends; at the map's 120 s, the tests' pages would exhaust the reserved concurrency
            # (429). The demo's 20 s frees them and puts resumes inside every test.
            "--env", f"sse_streaming:SSE_STREAM_LIFETIME_S={DEMO_STREAM_LIFETIME_S}",
            "--sse-runtime", "process",  # the browser tests' stack starts in under 60 s: no image build
            start_timeout_s=60) as (state, process):
        yield RunningStack(state["gateway"], state["aws_endpoint"], directory, process)


@dataclass
class _Pair:
    client: socket.socket
    upstream: socket.socket
    streaming: bool = False
    closed: bool = False


@dataclass
class CuttableProxy:
    """A TCP proxy in front of the gateway. `cut_streams()` resets every connection carrying a stream,
    as a network failure does; everything else passes through untouched."""

    target: tuple[str, int]
    pairs: list[_Pair] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        threading.Thread(target=self._accept, name="e2e-proxy", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            pair = _Pair(client, upstream)
            with self._lock:
                self.pairs.append(pair)
            threading.Thread(target=self._pump, args=(pair, client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(pair, upstream, client, False), daemon=True).start()

    def _pump(self, pair: _Pair, source: socket.socket, sink: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                if from_client and b"GET /api/v2/stream" in data:
                    pair.streaming = True
                sink.sendall(data)
        except OSError:
            pass
        self._close(pair)

    def _close(self, pair: _Pair) -> None:
        with self._lock:
            if pair.closed:
                return
            pair.closed = True
        for sock in (pair.client, pair.upstream):
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
                sock.shutdown(socket.SHUT_RDWR)  # wakes the pump blocked in recv(); close() alone would not
            except OSError:
                pass
            sock.close()

    def cut_streams(self) -> int:
        with self._lock:
            live = [pair for pair in self.pairs if pair.streaming and not pair.closed]
        for pair in live:
            self._close(pair)
        return len(live)

    def stop(self) -> None:
        self._stopped.set()
        self._listener.close()
        with self._lock:
            pairs = list(self.pairs)
        for pair in pairs:
            self._close(pair)


@pytest.fixture(scope="session")
def proxy(e2e_stack: RunningStack) -> Iterator[CuttableProxy]:
    host, _, port = e2e_stack.gateway.removeprefix("http://").partition(":")
    cuttable = CuttableProxy((host, int(port)))
    yield cuttable
    cuttable.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (Debian's chromium package)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@dataclass
class RecordedRequest:
    url: str
    method: str
    headers: dict[str, str]
    at: float
    response_headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Tab:
    """A page of the dashboard, with every API request it made (headers as sent)."""

    page: Page
    requests: list[RecordedRequest]

    def api_requests(self, since: float = 0.0, stream: bool = False) -> list[RecordedRequest]:
        return [r for r in self.requests if r.at >= since and ("/api/v2/stream" in r.url) == stream]


@pytest.fixture
def tab(browser: Browser, proxy: CuttableProxy) -> Iterator[Tab]:
    context = browser.new_context()
    page = context.new_page()
    recorded: list[RecordedRequest] = []
    by_request: dict[int, RecordedRequest] = {}

    def on_request(request: Request) -> None:
        if "/api/v2/" in request.url:
            entry = RecordedRequest(request.url, request.method, dict(request.headers), time.time())
            recorded.append(entry)
            by_request[id(request)] = entry

    def on_response(response: Any) -> None:
        entry = by_request.get(id(response.request))
        if entry is not None:
            entry.response_headers = dict(response.headers)

    page.on("request", on_request)
    page.on("response", on_response)
    page.goto(proxy.url)
    yield Tab(page, recorded)
    context.close()
