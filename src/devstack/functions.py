"""The Lambda service of the local stack: the seven functions, each in its own worker processes.

Each execution environment is a process running the function's own runtime against a local
Runtime API (`devstack.runtime_api`): the batch functions through AWS's runtime interface client
(`python -m awslambdaric <handler>`, which sets `_X_AMZN_TRACE_ID` per invocation as Lambda
does), the SSE function through its container's `docker/sse/bootstrap`. Each process gets the
environment Lambda gives (`devstack.lambda_service.lambda_environment`, the stack map's env
resolved to local resources, plus the stack's local overrides). The Runtime API decides sampling
and writes the `AWS::Lambda` / `AWS::Lambda::Function` segments per invocation.

Like Lambda, a function scales out: when every environment is busy, the next invocation starts a
new one (a cold start), up to the function's limit; they stay warm until the stack stops.

Invocation types:
- `invoke` (RequestResponse): the result, or `FunctionError` when the function failed.
- `invoke_event` (Event: EventBridge schedules, SNS): on failure Lambda retries twice, then sends
  the event to the function's dead-letter queue (stack map `dead_letter_queue`), if it has one.
- `stream` (RESPONSE_STREAM, the Function URL of the SSE function): status, headers, then the body
  chunks as the function writes them.

Example:
    >>> service = LambdaService(load_stack(), resources, daemon.address, moto.endpoint).start()  # doctest: +SKIP
    >>> result, invocation = service.invoke("dashboard", api_gateway_event)                    # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import datetime as dt
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from devstack.aws import AWS_ENV, REGION, Resources
from devstack.console import Console
from devstack.lambda_service import ACCOUNT_ID, Invocation, lambda_environment
from devstack.stack import REPO_ROOT, SRC_ROOT, FunctionSpec, Stack
from lib.tracing.header import TraceHeader

SSE_BOOTSTRAP = REPO_ROOT / "docker" / "sse" / "bootstrap"
ASYNC_RETRIES = 2  # Lambda retries a failed asynchronous invocation twice
DEFAULT_RETRY_DELAYS_S = (1.0, 2.0)  # AWS waits about 1 and 2 minutes; the local stack keeps the order, not the wait
DEFAULT_MAX_ENVIRONMENTS = {"sse_streaming": 8, "analysis": 3}
WORKER_STOP_TIMEOUT_S = 3.0
PR_SET_PDEATHSIG = 1


class FunctionError(Exception):
    """The function failed an invocation (what Lambda reports as `X-Amz-Function-Error`)."""

    def __init__(self, function: str, error_type: str, message: str, invocation: Invocation | None):
        super().__init__(f"{function}: {error_type}: {message}")
        self.function = function
        self.error_type = error_type
        self.message = message
        self.invocation = invocation


class FunctionUnavailableError(RuntimeError):
    """The function's code is not in this checkout (or its runtime could not start)."""


@dataclass
class InvocationRecord:
    """One finished invocation, for the console, the demo report and the tests."""

    function: str
    trace_id: str
    request_id: str
    sampled: bool
    duration_ms: float
    outcome: str          # ok | error | streamed
    error_type: str | None = None
    attempt: int = 1
    cold_start: bool = False


def code_present(spec: FunctionSpec) -> bool:
    """Is the function's code in this checkout? (Its handler module, and for the image its bootstrap.)"""
    module = spec.handler.rpartition(".")[0]
    sys_path_had = str(SRC_ROOT) in sys.path
    if not sys_path_had:
        sys.path.insert(0, str(SRC_ROOT))
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    finally:
        if not sys_path_had:
            sys.path.remove(str(SRC_ROOT))
    return found and (spec.package != "image" or SSE_BOOTSTRAP.is_file())


def _die_with_parent() -> None:
    """In the worker, before exec: the kernel sends SIGTERM when the devstack dies (no orphans)."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def scheduled_event(function: FunctionSpec, now: dt.datetime | None = None) -> dict[str, Any]:
    """The event EventBridge sends a scheduled target."""
    moment = now or dt.datetime.now(dt.UTC)
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT_ID, "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{function.name}-schedule"], "detail": {},
    }


@dataclass
class _Pool:
    """The execution environments of one function."""

    spec: FunctionSpec
    environment: dict[str, str]
    max_environments: int
    workers: list[Worker] = field(default_factory=list)
    ready: threading.Condition = field(default_factory=threading.Condition)


class LambdaService:
    def __init__(self, stack: Stack, resources: Resources, daemon_address: str, aws_endpoint: str,
                 env_overrides: Mapping[str, Mapping[str, str]] | None = None, log_dir: Path | None = None,
                 console: Console | None = None, retry_delays_s: tuple[float, ...] = DEFAULT_RETRY_DELAYS_S,
                 max_environments: Mapping[str, int] | None = None, worker_env: Mapping[str, str] | None = None):
        self.stack = stack
        self.resources = resources
        self.daemon_address = daemon_address
        self.console = console or Console(quiet=True)
        self.retry_delays_s = retry_delays_s
        self.log_dir = log_dir
        self.records: list[InvocationRecord] = []
        self.dead_letters: list[dict[str, Any]] = []
        self._records_lock = threading.Lock()
        self._pending = 0
        self._pending_cv = threading.Condition()
        self._async = ThreadPoolExecutor(max_workers=16, thread_name_prefix="lambda-async")
        limits = {**DEFAULT_MAX_ENVIRONMENTS, **(max_environments or {})}
        self.available: dict[str, bool] = {}
        self._pools: dict[str, _Pool] = {}
        base = {key: os.environ[key] for key in ("PATH", "HOME", "LANG", "TMPDIR") if key in os.environ}
        for key, spec in stack.functions.items():
            self.available[key] = code_present(spec)
            if not self.available[key]:
                continue
            resolved = {name: resources.resolve(value) for name, value in spec.env.items()}
            resolved.update((env_overrides or {}).get(key, {}))
            environment = {
                **base, **AWS_ENV, "AWS_ENDPOINT_URL": aws_endpoint, "PYTHONPATH": str(SRC_ROOT),
                "PYTHONUNBUFFERED": "1", **(worker_env or {}),
                **lambda_environment(spec, resolved, daemon_address),
            }
            self._pools[key] = _Pool(spec, environment, limits.get(key, 2))

    # lifecycle -----------------------------------------------------------------------------------
    def start(self, warm: tuple[str, ...] = ()) -> LambdaService:
        """Start one environment for each function in `warm` now; the others start on first use."""
        for key in warm:
            if key in self._pools:
                self._spawn(self._pools[key])
        return self

    def stop(self) -> None:
        self._async.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools.values():
            with pool.ready:
                workers, pool.workers = list(pool.workers), []
            for worker in workers:
                worker.stop()

    def missing(self) -> list[str]:
        return [key for key, present in self.available.items() if not present]

    def require(self, key: str) -> None:
        if key not in self._pools:
            raise FunctionUnavailableError(f"function {key!r} is not in this checkout "
                                           f"({self.stack.function(key).handler})")

    # invocation ----------------------------------------------------------------------------------
    def invoke(self, key: str, event: Any, upstream: TraceHeader | None = None,
               upstream_segment_written: bool = False, attempt: int = 1) -> tuple[Any, Invocation]:
        """RequestResponse: the parsed result, or FunctionError (the `Invoke` protocol of sns_delivery)."""
        self.require(key)
        pool = self._pools[key]
        worker, cold = self._acquire(pool)
        started = time.monotonic()
        try:
            call = worker.invoke(event, upstream, upstream_segment_written)
            try:
                result = call.result()
            except FunctionError as error:
                self._record(pool, call.invocation, started, "error", error.error_type, attempt, cold)
                raise
        finally:
            self._release(pool, worker)
        self._record(pool, call.invocation, started, "ok", None, attempt, cold)
        return result, call.invocation

    def invoke_event(self, key: str, event: Any, upstream: TraceHeader | None = None,
                     upstream_segment_written: bool = False) -> tuple[Any, Invocation | None]:
        """Event invocation, run to its end in the calling thread: retries, then the DLQ. Never raises
        FunctionError: the failure is Lambda's to handle (console line, dead-letter queue)."""
        last: FunctionError | None = None
        for attempt in range(1, ASYNC_RETRIES + 2):
            if attempt > 1:
                time.sleep(self.retry_delays_s[min(attempt - 2, len(self.retry_delays_s) - 1)])
            try:
                return self.invoke(key, event, upstream, upstream_segment_written, attempt)
            except FunctionError as error:
                last = error
        assert last is not None
        self._dead_letter(key, event, last)
        return None, last.invocation

    def submit(self, work: Callable[[], Any]) -> None:
        """Run `work` (an Event invocation, an SNS delivery) on the service's threads; `wait_idle` waits for it."""
        with self._pending_cv:
            self._pending += 1

        def run() -> None:
            try:
                work()
            finally:
                with self._pending_cv:
                    self._pending -= 1
                    self._pending_cv.notify_all()

        self._async.submit(run)

    def submit_event(self, key: str, event: Any, upstream: TraceHeader | None = None,
                     upstream_segment_written: bool = False) -> None:
        """Queue an Event invocation (returns at once, as Lambda's 202)."""
        self.submit(lambda: self.invoke_event(key, event, upstream, upstream_segment_written))

    def wait_idle(self, timeout_s: float = 60.0) -> bool:
        """True once no queued Event invocation is left (SNS fan-out settled)."""
        end = time.monotonic() + timeout_s
        with self._pending_cv:
            while self._pending:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    return False
                self._pending_cv.wait(remaining)
        return True

    def stream(self, key: str, event: Any, upstream: TraceHeader | None) -> StreamingCall:
        """RESPONSE_STREAM: the environment is held until the stream ends or `close()` is called."""
        self.require(key)
        pool = self._pools[key]
        worker, cold = self._acquire(pool)
        started = time.monotonic()
        call = worker.invoke(event, upstream, False)

        def finished(outcome: str, error_type: str | None) -> None:
            self._release(pool, worker)
            self._record(pool, call.invocation, started, outcome, error_type, 1, cold)

        return StreamingCall(call, finished)

    # environments --------------------------------------------------------------------------------
    def _acquire(self, pool: _Pool) -> tuple[Worker, bool]:
        """An idle environment; a new one (cold start) when all are busy; else wait for one."""
        with pool.ready:
            while True:
                idle = next((worker for worker in pool.workers if not worker.busy), None)
                if idle is not None:
                    idle.busy = True
                    return idle, False
                if len(pool.workers) < pool.max_environments:
                    worker = self._spawn_locked(pool)
                    worker.busy = True
                    return worker, True
                pool.ready.wait()

    def _release(self, pool: _Pool, worker: Worker) -> None:
        with pool.ready:
            worker.busy = False
            pool.ready.notify()

    def _spawn(self, pool: _Pool) -> Worker:
        with pool.ready:
            return self._spawn_locked(pool)

    def _spawn_locked(self, pool: _Pool) -> Worker:
        worker = Worker(pool.spec, pool.environment, self.daemon_address, self.log_dir, len(pool.workers) + 1)
        worker.start()
        pool.workers.append(worker)
        return worker

    # bookkeeping ---------------------------------------------------------------------------------
    def _record(self, pool: _Pool, invocation: Invocation, started: float, outcome: str, error_type: str | None,
                attempt: int, cold: bool) -> None:
        record = InvocationRecord(pool.spec.key, invocation.trace_header.root, invocation.request_id,
                                  invocation.sampled, (time.monotonic() - started) * 1000, outcome, error_type,
                                  attempt, cold)
        with self._records_lock:
            self.records.append(record)
        detail = " ".join(part for part in (
            "cold" if cold else "", f"attempt {attempt}" if attempt > 1 else "",
            "" if invocation.sampled else "not sampled") if part)
        self.console.event("invoke", pool.spec.key, trace=record.trace_id, ms=record.duration_ms,
                           outcome=outcome if error_type is None else f"{outcome} {error_type}", detail=detail)

    def _dead_letter(self, key: str, event: Any, error: FunctionError) -> None:
        """What Lambda does after the last retry: the event to the DLQ, with its error attributes."""
        queue = self.stack.function(key).dead_letter_queue
        trace = error.invocation.trace_header.root if error.invocation else None
        if queue is None:
            self.console.event("dropped", key, trace=trace, outcome=error.error_type,
                               detail="no dead-letter queue: the event is lost, as in Lambda")
            return
        request_id = error.invocation.request_id if error.invocation else str(uuid.uuid4())
        boto3.client("sqs").send_message(
            QueueUrl=self.resources.queues[queue], MessageBody=json.dumps(event),
            MessageAttributes={
                "RequestID": {"DataType": "String", "StringValue": request_id},
                "ErrorCode": {"DataType": "Number", "StringValue": "200"},
                "ErrorMessage": {"DataType": "String", "StringValue": f"{error.error_type}: {error.message}"[:1024]},
            })
        with self._records_lock:
            self.dead_letters.append({"function": key, "queue": queue, "trace_id": trace, "error": error.error_type})
        self.console.event("dlq", key, trace=trace, outcome=error.error_type, detail=f"event sent to {queue}")


class StreamingCall:
    """A RESPONSE_STREAM invocation as the gateway relays it (devstack.gateway.StreamingReply)."""

    def __init__(self, call: Any, finished: Callable[[str, str | None], None]):
        self._call = call
        self._finished = finished
        self._done = False
        self.invocation: Invocation = call.invocation
        self.status, self.headers = call.prelude()

    def chunks(self) -> Iterator[bytes]:
        yield from self._call.chunks()

    def close(self) -> None:
        if self._done:
            return
        self._done = True
        error_type = self._call.close()
        self._finished("streamed" if error_type is None else "error", error_type)


class Worker:
    """One execution environment: a process running the function's runtime against its own Runtime API."""

    def __init__(self, spec: FunctionSpec, environment: Mapping[str, str], daemon_address: str,
                 log_dir: Path | None, number: int):
        from devstack.runtime_api import RuntimeApi  # the SSE issue's module: the one local Runtime API

        self.spec = spec
        self.number = number
        self.runtime = RuntimeApi(spec, daemon_address)
        self._environment = dict(environment)
        self._log_dir = log_dir
        self._process: subprocess.Popen[bytes] | None = None
        self.busy = False

    def command(self) -> list[str]:
        if self.spec.package == "image":
            return [sys.executable, str(SSE_BOOTSTRAP)]
        return [sys.executable, "-m", "awslambdaric", self.spec.handler]

    def start(self) -> None:
        self.runtime.start()
        env = {**self._environment, "AWS_LAMBDA_RUNTIME_API": self.runtime.address}
        if self._log_dir is not None:
            self._log_dir.mkdir(parents=True, exist_ok=True)
            log = (self._log_dir / f"{self.spec.key}.log").open("ab")
        else:
            log = subprocess.DEVNULL  # type: ignore[assignment]
        self._process = subprocess.Popen(
            self.command(), env=env, cwd=str(SRC_ROOT), stdin=subprocess.DEVNULL, stdout=log,
            stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent,
        )
        if self._log_dir is not None:
            log.close()  # type: ignore[union-attr]

    def invoke(self, event: Any, upstream: TraceHeader | None, upstream_segment_written: bool) -> Any:
        return self.runtime.invoke(event, upstream=upstream, upstream_segment_written=upstream_segment_written)

    def stop(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(WORKER_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.runtime.stop()


class Scheduler:
    """EventBridge schedules: each scheduled function invoked (Event type) every `interval` seconds."""

    def __init__(self, service: LambdaService, intervals_s: Mapping[str, float]):
        self.service = service
        self.intervals_s = {key: value for key, value in intervals_s.items() if value > 0}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def fire(self, key: str) -> tuple[Any, Invocation | None]:
        """One scheduled invocation now, run to its end (retries included)."""
        return self.service.invoke_event(key, scheduled_event(self.service.stack.function(key)))

    def start(self) -> Scheduler:
        for key, interval in self.intervals_s.items():
            if not self.service.available.get(key):
                continue
            thread = threading.Thread(target=self._run, args=(key, interval), name=f"schedule-{key}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def _run(self, key: str, interval: float) -> None:
        while not self._stop.wait(interval):
            self.fire(key)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=1)
