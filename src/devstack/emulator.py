"""The whole system on one machine (DESIGN.md, "The devstack"): what `python -m devstack up` runs.

One object starts, in order: moto behind the fault gate (every resource of the stack map), the
trace pipeline (X-Ray daemon, OTLP receiver on 4318, `<dir>/traces/segments.jsonl`), the fake news
sources (publishing new headlines over time), the SendGrid sink, the seed data, the Lambda service
(seven functions in worker processes), SNS → Lambda delivery, the EventBridge schedules and the
gateway. `stop()` stops all of it, workers included; a state file (`<dir>/emulator.json`) tells
`python -m devstack traces` where a running stack's X-Ray API is.

Example (not run: starts the whole stack):
    >>> with Emulator(EmulatorOptions(port=0)).start() as stack:   # doctest: +SKIP
    ...     print(stack.url)
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from devstack.aws.fault_gate import AwsGate, GatedMotoServer
from devstack.aws.resources import Resources, create_resources
from devstack.aws.sns_delivery import Publication, SnsDelivery
from devstack.console import Console
from devstack.edge.cloudfront import BufferedReply, CloudFrontEdge, EdgeRequest, EdgeResponse
from devstack.edge.origin_access import FORBIDDEN_BODY, FORBIDDEN_HEADERS, OriginAccess
from devstack.fakes.news_sources import FakeNewsServer
from devstack.fakes.sendgrid_sink import SendGridSink
from devstack.lambda_.container import ContainerImage, ContainerRuntime, ContainerUnavailable
from devstack.lambda_.events import function_url_event
from devstack.lambda_.invoke_api import LambdaInvokeApi
from devstack.lambda_.lambda_service import LambdaService, StreamingCall, ThrottledReply, TooManyRequestsException
from devstack.lambda_.scheduler import Scheduler
from devstack.seed import Seeded, seed_stack
from devstack.stack import REPO_ROOT, Stack, load_stack
from devstack.xray.pipeline import TracePipeline, devstack_dir
from devstack.xray.trace_view import LocalTraceViews

COLLECTOR_PORT = 4318  # the SSE code exports to the ADOT extension's localhost:4318
FRONTEND_DIST = REPO_ROOT / "frontend" / "dist"
# Not "stack.json": in this project "stack" means the stack map (infrastructure/terraform/stack.json).
STATE_FILE = "emulator.json"
DEFAULT_SCHEDULES_S = {"ingestion": 60.0, "metrics": 60.0, "canary": 300.0}
SSE_RUNTIMES = ("auto", "container", "process")  # how the SSE function runs: see Emulator._sse_runners


@dataclass
class EmulatorOptions:
    host: str = "127.0.0.1"
    port: int = 8000
    directory: Path = field(default_factory=devstack_dir)
    schedules_s: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SCHEDULES_S))
    feed_interval_s: float = 20.0            # a new headline at the fake sources every N s (0: none)
    frontend_dist: Path = FRONTEND_DIST
    collector_port: int = COLLECTOR_PORT
    retry_delays_s: tuple[float, ...] = (1.0, 2.0)
    warm: tuple[str, ...] = ("ingestion", "analysis", "dashboard", "notification")
    env_overrides: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    sse_runtime: str = "auto"  # container: its image (needs a docker engine); process: its bootstrap; auto: either


class EmulatorStartError(RuntimeError):
    """The local stack could not start (a port taken, a dependency missing); the message says what to do."""


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _module_present(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


class FunctionUrlBackend:
    """The SSE function's Function URL (AWS_IAM): a request the edge signed becomes a payload-2.0 event,
    streamed back; any other is refused 403 before the function runs (devstack.edge.origin_access)."""

    def __init__(self, service: LambdaService, access: OriginAccess, key: str = "sse_streaming"):
        self.service = service
        self.access = access
        self.key = key
        self.refused = 0

    def open(self, request: EdgeRequest) -> StreamingCall | BufferedReply | ThrottledReply:
        if not self.access.function_url_allows(request.method, request.path, request.query, request.headers):
            self.refused += 1
            return BufferedReply(403, list(FORBIDDEN_HEADERS), FORBIDDEN_BODY)
        event = function_url_event(request.method, request.path, request.headers, request.query, request.body,
                                   request.source_ip)
        try:
            return self.service.stream(self.key, event, request.upstream)
        except TooManyRequestsException as error:  # past reserved concurrency the Function URL answers 429
            return ThrottledReply(error)


class Emulator:
    def __init__(self, options: EmulatorOptions | None = None, console: Console | None = None,
                 stack: Stack | None = None):
        self.options = options or EmulatorOptions()
        self.console = console or Console()
        self.stack = stack or load_stack()
        self.notes: list[str] = []
        self._exit = contextlib.ExitStack()
        self.gate = AwsGate()
        self.publications: list[Publication] = []

    # lifecycle -----------------------------------------------------------------------------------
    def start(self) -> Emulator:
        try:
            self._start()
        except BaseException:
            self._exit.close()
            raise
        return self

    def _start(self) -> None:
        options = self.options
        missing = [name for name in ("awslambdaric", "moto") if importlib.util.find_spec(name) is None]
        if missing:
            raise EmulatorStartError(f"{', '.join(missing)} not installed in this Python: run `make install`")
        directory = options.directory.resolve()
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        # The edge first: a taken port is the commonest failure, and nothing else has started yet.
        self.gateway = CloudFrontEdge(None, None, options.frontend_dist, options.host, options.port, self.console)
        self._exit.callback(self.gateway.stop)
        if not (options.frontend_dist / "index.html").is_file():
            self.notes.append(f"frontend not built ({options.frontend_dist}): run `make frontend-build`; "
                              "the API and the stream work without it")

        self.moto = GatedMotoServer(self.gate, options.host).start()
        self._exit.callback(self.moto.stop)
        os.environ.update(self.moto.environment())  # this process's boto3 (seed, DLQ, traces) talks to it too

        collector_port = options.collector_port
        if collector_port and not _port_free(options.host, collector_port):
            self.notes.append(f"port {collector_port} is taken: the OTLP receiver uses a free port and the SSE "
                              "workers get OTEL_EXPORTER_OTLP_TRACES_ENDPOINT pointing at it")
            collector_port = 0
        record = directory / "traces" / "segments.jsonl"
        record.unlink(missing_ok=True)  # the file holds this stack's documents, as its X-Ray does
        self.pipeline = TracePipeline(record_path=record, moto=self.moto,
                                      receiver_port=collector_port).start()
        self._exit.callback(self.pipeline.stop)
        self.resources: Resources = create_resources(self.stack)

        self.news = FakeNewsServer(options.host).start()
        self._exit.callback(self.news.stop)
        if options.feed_interval_s > 0:
            self.news.start_feed(options.feed_interval_s)
        self.sendgrid = SendGridSink(options.host).start()
        self._exit.callback(self.sendgrid.stop)
        self.seeded: Seeded = seed_stack(self.resources, self.news, sendgrid_api_key=self.sendgrid.api_key)

        # The canary's probes call Lambda's Invoke API: served locally in front of the Lambda service.
        self.invoke_api = LambdaInvokeApi(host=options.host).start()
        self._exit.callback(self.invoke_api.stop)
        overrides = self._env_overrides(collector_port)
        overrides.setdefault("canary", {})["AWS_ENDPOINT_URL_LAMBDA"] = self.invoke_api.endpoint
        worker_env = {"DEVSTACK_DIR": str(directory)}
        self.functions = LambdaService(
            self.stack, self.resources, self.pipeline.daemon.address, self.moto.endpoint, overrides,
            directory / "logs", self.console, options.retry_delays_s, worker_env=worker_env,
            runners=self._sse_runners(),
        )
        self._exit.callback(self.functions.stop)
        self.invoke_api.service = self.functions
        missing = self.functions.missing()
        if missing:
            self.notes.append(f"functions not in this checkout (not started): {', '.join(missing)}")
        self.functions.start(warm=options.warm)

        self.delivery = SnsDelivery(self.stack, self.resources, self.pipeline.daemon.address)
        self._subscribed = {self.resources.topics[spec.trigger["topic"]]
                            for spec in self.stack.functions.values() if spec.trigger.get("type") == "sns"}
        self.gate.on_publish(self._on_publish)

        self.scheduler = Scheduler(self.functions, options.schedules_s).start()
        self._exit.callback(self.scheduler.stop)
        self._watching = threading.Event()
        self._watcher = threading.Thread(target=self._watch_emails, name="email-watch", daemon=True)
        self._watcher.start()
        self._exit.callback(self._stop_watching)

        self.gateway.api = _api_backend(self)
        if self.gateway.api is None:
            self.notes.append("the dashboard function or devstack.edge.api_gateway is not in this checkout: "
                              "/api/v2/* (except the stream) answers 503")
        self.gateway.stream = FunctionUrlBackend(self.functions, self.gateway.origin_access) \
            if self.functions.available.get("sse_streaming") else None
        self.gateway.trace_views = LocalTraceViews(self.pipeline.xray, auth={
            "endpoint": f"{self.moto.endpoint}/", "clientId": self.seeded.auth.client_id})
        self.gateway.start()
        self._exit.callback(self.gateway.stop)  # on the way down, the edge closes first
        self._write_state()
        self._exit.callback(self._remove_state)

    def stop(self) -> None:
        self._exit.close()
        self.console.quiet = True  # threads winding down (a relay, a settling stream) have nothing to add

    def __enter__(self) -> Emulator:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return self.gateway.url

    # wiring --------------------------------------------------------------------------------------
    def _sse_runners(self) -> dict[str, Any]:
        """The SSE function as its container image when a docker engine can run here (`auto`, `container`),
        else as a process running its bootstrap (`auto` without an engine, `process`). Says which."""
        mode = self.options.sse_runtime
        if mode not in SSE_RUNTIMES:
            raise EmulatorStartError(f"--sse-runtime {mode!r}: one of {', '.join(SSE_RUNTIMES)}")
        image: ContainerImage | None = None
        if mode != "process":
            self.console.line("SSE function: preparing its container image (a docker engine, the cached build) ...")
            try:
                image = ContainerImage.prepare(install=mode == "container")
            except ContainerUnavailable as why:
                if mode == "container":
                    raise EmulatorStartError(f"--sse-runtime container: {why}") from why
                self.sse_runtime = f"process (docker/sse/bootstrap; no container: {str(why)[:300]})"
        if image is None:
            if mode == "process":
                self.sse_runtime = "process (docker/sse/bootstrap, as chosen with --sse-runtime process)"
            self.console.line(f"SSE function runs as a {self.sse_runtime}")
            self.notes.append(f"SSE function: {self.sse_runtime}")
            return {}
        self._exit.callback(image.close)
        self.sse_runtime = (f"container ({image.tag}: ENTRYPOINT {' '.join(image.entrypoint)} + the handler, "
                            f"read-only root, /tmp, its extensions; {image.how})")
        self.console.line(f"SSE function runs as a {self.sse_runtime}")
        self.notes.append(f"SSE function: {self.sse_runtime}")
        receiver = self.pipeline.receiver.endpoint
        return {"sse_streaming": lambda runtime, env: ContainerRuntime(runtime, image, env, receiver)}

    def _env_overrides(self, collector_port: int) -> dict[str, dict[str, str]]:
        overrides: dict[str, dict[str, str]] = {key: dict(value) for key, value in self.options.env_overrides.items()}
        overrides.setdefault("ingestion", {}).update(self.news.environment())
        overrides.setdefault("notification", {}).update(self.sendgrid.environment())
        # The canary reads traces back after 30 s and 60 s in AWS; the local pipeline stores at once.
        overrides.setdefault("canary", {}).setdefault("CANARY_READBACK_DELAYS_S", "1,2")
        if collector_port != COLLECTOR_PORT:
            overrides.setdefault("sse_streaming", {})["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"] = \
                self.pipeline.receiver.endpoint
        return overrides

    def _on_publish(self, publication: Publication) -> None:
        """SNS delivery (runs on moto's request thread: hand the work off, never block the publisher)."""
        self.publications.append(publication)
        if publication.topic_arn not in self._subscribed:
            topic = publication.topic_arn.rsplit(":", 1)[-1]
            self.console.event("sns", topic, trace=publication.trace_header.root if publication.trace_header else None,
                               detail=(publication.subject or publication.message)[:80])
            return
        self.functions.submit(lambda: self.delivery.deliver(publication, self.functions.invoke_event))

    def _stop_watching(self) -> None:
        self._watching.set()
        self._watcher.join(timeout=2)

    def _watch_emails(self) -> None:
        """One console line per email the SendGrid sink accepted (the address masked)."""
        seen = 0
        while not self._watching.wait(0.5):
            sent = self.sendgrid.sent()
            for email in sent[seen:]:
                masked = ", ".join(f"{to[:1]}***@{to.partition('@')[2]}" for to in email.to)
                self.console.event("email", "sendgrid", detail=f"to {masked}: {email.subject[:70]}")
            seen = len(sent)

    def _write_state(self) -> None:
        state = {"pid": os.getpid(), "gateway": self.gateway.url, "aws_endpoint": self.moto.endpoint,
                 "started_at": time.time(), "segments": str(self.directory / "traces" / "segments.jsonl"),
                 "cognito": {"user_pool_id": self.seeded.auth.user_pool_id, "client_id": self.seeded.auth.client_id}}
        (self.directory / STATE_FILE).write_text(json.dumps(state, indent=2))

    def _remove_state(self) -> None:
        (self.directory / STATE_FILE).unlink(missing_ok=True)


def running_emulator(directory: Path | None = None) -> dict[str, Any] | None:
    """The state of the stack running from `directory` (None when none is: no file, or its process is gone)."""
    path = (directory or devstack_dir()) / STATE_FILE
    if not path.is_file():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    try:
        os.kill(int(state["pid"]), 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, someone else's
        pass
    return state


class ApiGatewayBackend:
    """The gateway's `/api/v2/*` route: devstack.edge.api_gateway (REST proxy event, stage segment) → dashboard."""

    def __init__(self, service: LambdaService, daemon_address: str, web_acl: OriginAccess, authorizer: Any = None):
        from devstack.edge.api_gateway import ApiGateway

        self._api = ApiGateway(service.invoke, daemon_address, web_acl=web_acl, authorizer=authorizer)

    @property
    def blocked(self) -> int:
        """Requests the stage's web ACL refused (no origin-verify header)."""
        return self._api.blocked

    def handle(self, request: EdgeRequest) -> EdgeResponse:
        from devstack.edge.api_gateway import GatewayRequest

        response = self._api.handle(GatewayRequest(request.method, request.path, request.query, request.headers,
                                                   request.body, request.source_ip))
        return EdgeResponse(response.status, list(response.headers), response.body)


def _api_backend(stack: Emulator) -> ApiGatewayBackend | None:
    if not _module_present("devstack.edge.api_gateway") or not stack.functions.available.get("dashboard"):
        return None
    from devstack.edge.cognito_authorizer import CognitoAuthorizer

    pool = stack.seeded.auth.user_pool_id
    authorizer = CognitoAuthorizer(pool, jwks_url=f"{stack.moto.endpoint}/{pool}/.well-known/jwks.json")
    return ApiGatewayBackend(stack.functions, stack.pipeline.daemon.address, stack.gateway.origin_access, authorizer)
