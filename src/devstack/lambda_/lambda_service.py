"""The Lambda service of the local stack: the seven functions, each in its own worker processes.

Each execution environment is a process running the function's own runtime against a local
Runtime API (`devstack.lambda_.runtime_api`): the batch functions through AWS's runtime interface client
(`python -m awslambdaric <handler>`, which sets `_X_AMZN_TRACE_ID` per invocation as Lambda
does), the SSE function through its container's `docker/sse/bootstrap`. Each process gets the
environment Lambda gives (`devstack.lambda_.invocation.lambda_environment`, the stack map's env
resolved to local resources, plus the stack's local overrides). The Runtime API decides sampling
and writes the `AWS::Lambda` / `AWS::Lambda::Function` segments per invocation.

Like Lambda, one invocation per environment, and a function scales out: when every environment is
busy, the next invocation starts a new one (a cold start), up to the function's reserved concurrency
(stack map `reserved_concurrency`); past it a synchronous or streamed invocation is throttled
(TooManyRequestsException, 429 on the Function URL, counted as `Throttles`). Environments stay warm
until the stack stops.

Invocation types:
- `invoke` (RequestResponse): the result, or `FunctionError` when the function failed.
- `invoke_event` (Event: EventBridge schedules, SNS): on failure Lambda retries twice, then sends
  the event to the function's dead-letter queue (stack map `dead_letter_queue`), if it has one.
- `stream` (RESPONSE_STREAM, the Function URL of the SSE function): status, headers, then the body
  chunks as the function writes them.

Example (not run: starts runtime processes):
    >>> service = LambdaService(load_stack(), resources, daemon.address, moto.endpoint).start()  # doctest: +SKIP
    >>> result, invocation = service.invoke("dashboard", api_gateway_event)                    # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import json
import os
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

from devstack.aws.moto_server import AWS_ENV
from devstack.aws.resources import Resources
from devstack.console import Console
from devstack.edge.cloudfront import BufferedReply
from devstack.lambda_.invocation import Invocation, lambda_environment
from devstack.lambda_.process import RuntimeProcess
from devstack.lambda_.response_stream import FunctionError, ResponseStream
from devstack.lambda_.runtime_api import RuntimeApi
from devstack.stack import REPO_ROOT, SRC_ROOT, FunctionSpec, Stack
from lib.tracing.header import TraceHeader

SSE_DOCKERFILE = REPO_ROOT / "docker" / "sse" / "Dockerfile"
# Where the image's files come from in this checkout (the Dockerfile's COPY lines): the process
# runner starts the image's ENTRYPOINT with these paths, and the venv's Python for the image's.
IMAGE_PATHS = {"/var/runtime/bootstrap": REPO_ROOT / "docker" / "sse" / "bootstrap", "python3": Path(sys.executable)}
ASYNC_RETRIES = 2  # Lambda retries a failed asynchronous invocation twice
DEFAULT_RETRY_DELAYS_S = (1.0, 2.0)  # AWS waits about 1 and 2 minutes; the local stack keeps the order, not the wait
# How many environments the local stack starts for a function WITHOUT reserved concurrency (the
# machine's means, not AWS's: such a function draws on the account's pool, 1,000 by default, which no
# local run reaches). Past it, invocations wait for a free environment. A function with reserved
# concurrency in the stack map scales to exactly that, and is throttled past it.
DEFAULT_MAX_ENVIRONMENTS = {"analysis": 3}
UNRESERVED_MAX_ENVIRONMENTS = 2
THROTTLES_NAMESPACE = "AWS/Lambda"  # https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html
PROCESS_STOP_TIMEOUT_S = 3.0

__all__ = ["FunctionUnavailableError", "InvocationRecord", "LambdaService", "StreamingCall", "ThrottledReply",
           "TooManyRequestsException",
           "code_present", "image_entrypoint", "runtime_command"]


class FunctionUnavailableError(RuntimeError):
    """The function's code is not in this checkout (or its runtime could not start)."""


class TooManyRequestsException(RuntimeError):
    """Lambda's throttle: the function is at its reserved concurrency (every environment busy, none may start).

    Lambda answers a synchronous invocation (Invoke, a Function URL) past the function's reserved
    concurrency with HTTP 429 `TooManyRequestsException`, reason
    `ReservedFunctionConcurrentInvocationLimitExceeded`, and counts it in the function's `Throttles`
    metric: https://docs.aws.amazon.com/lambda/latest/api/API_Invoke.html (Errors),
    https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html,
    https://docs.aws.amazon.com/lambda/latest/dg/monitoring-metrics-types.html (`Throttles`).
    An Event invocation is not refused: Lambda keeps the event and retries it
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html).
    """

    status = 429
    error_type = "TooManyRequestsException"
    reason = "ReservedFunctionConcurrentInvocationLimitExceeded"

    def __init__(self, function: str, reserved: int):
        super().__init__(f"{function}: Rate Exceeded. (reserved concurrency {reserved} in use)")
        self.function = function
        self.reserved = reserved

    def body(self) -> dict[str, str]:
        """The error body, in the shape of the Invoke API's TooManyRequestsException (Type, message,
        Reason). AWS documents the 429 for a Function URL but not its body: the Invoke API's shape is the
        conservative reading."""
        return {"Type": "User", "message": "Rate Exceeded.", "Reason": self.reason}


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
    scaled_out: bool = False  # a new execution environment was started for it


def code_present(spec: FunctionSpec) -> bool:
    """Is the function's code in this checkout? (Its handler module, and for the image its bootstrap.)"""
    module = spec.handler.rpartition(".")[0]
    added = str(SRC_ROOT) not in sys.path
    if added:
        sys.path.insert(0, str(SRC_ROOT))
    try:
        found = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        found = False
    finally:
        if added:
            sys.path.remove(str(SRC_ROOT))
    return found and (spec.package != "image" or all(Path(part).is_file() for part in image_entrypoint()))


def image_entrypoint(dockerfile: Path = SSE_DOCKERFILE) -> list[str]:
    """The image's ENTRYPOINT (its exec form, a JSON array: the only form Lambda documents for a custom
    image), each image path mapped to this checkout's file (IMAGE_PATHS).

    Example:
        >>> image_entrypoint()[1].endswith("docker/sse/bootstrap")
        True
    """
    entrypoints = [line.split(None, 1)[1] for line in dockerfile.read_text().splitlines()
                   if line.strip().upper().startswith("ENTRYPOINT ")]
    if not entrypoints:
        raise ValueError(f"{dockerfile}: no ENTRYPOINT")
    entrypoint = json.loads(entrypoints[-1])  # the last one is the image's
    if not isinstance(entrypoint, list) or not all(isinstance(part, str) for part in entrypoint):
        raise ValueError(f"{dockerfile}: ENTRYPOINT must be a JSON array of strings (exec form)")
    return [str(IMAGE_PATHS.get(part, part)) for part in entrypoint]


def runtime_command(spec: FunctionSpec) -> list[str]:
    """The function's runtime, started as Lambda starts it.

    An image function: the image's ENTRYPOINT followed by the image command, which Terraform sets to
    the stack map's handler (`image_config.command`); Lambda passes it as argv and sets no `_HANDLER`
    (https://docs.aws.amazon.com/lambda/latest/dg/images-create.html,
    https://docs.aws.amazon.com/lambda/latest/api/API_ImageConfig.html). A zip function: AWS's
    runtime interface client with the handler, as the managed Python runtime runs it.
    """
    if spec.package == "image":
        return [*image_entrypoint(), spec.handler]
    return [sys.executable, "-m", "awslambdaric", spec.handler]


@dataclass
class _Pool:
    """One function: its Runtime API (an invocation queue) and the runtime processes polling it.

    Each process serves one invocation at a time, as an execution environment does; when more
    invocations are in flight than there are processes, one more starts (a cold start).
    """

    spec: FunctionSpec
    runtime: RuntimeApi
    environment: dict[str, str]
    max_environments: int  # the reserved concurrency, or the local cap of an unreserved function
    processes: list[RuntimeProcess] = field(default_factory=list)
    in_flight: int = 0
    crashes: int = 0
    throttles: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)


class LambdaService:
    def __init__(self, stack: Stack, resources: Resources, daemon_address: str, aws_endpoint: str,
                 env_overrides: Mapping[str, Mapping[str, str]] | None = None, log_dir: Path | None = None,
                 console: Console | None = None, retry_delays_s: tuple[float, ...] = DEFAULT_RETRY_DELAYS_S,
                 max_environments: Mapping[str, int] | None = None, worker_env: Mapping[str, str] | None = None,
                 runners: Mapping[str, Callable[[RuntimeApi, dict[str, str]], Any]] | None = None):
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
        self._streams: set[ResponseStream] = set()
        # function key -> an execution environment other than a child process (lambda_.container)
        self._runners = dict(runners or {})
        self._stopping = threading.Event()
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
            limit = spec.reserved_concurrency if spec.reserved_concurrency is not None \
                else limits.get(key, UNRESERVED_MAX_ENVIRONMENTS)
            self._pools[key] = _Pool(spec, RuntimeApi(spec, daemon_address), environment, limit)

    # lifecycle -----------------------------------------------------------------------------------
    def start(self, warm: tuple[str, ...] = ()) -> LambdaService:
        """Start every function's Runtime API, and one environment now for each function in `warm`
        (the others start on first use, a cold start)."""
        for pool in self._pools.values():
            pool.runtime.start()
        for key in warm:
            if key in self._pools:
                with self._pools[key].lock:
                    self._spawn_locked(self._pools[key])
        return self

    def stop(self) -> None:
        """Stop every runtime process (each one this service started, by its handle), then the Runtime APIs."""
        with self._pending_cv:  # `submit` checks it under the same lock: nothing is queued after this
            self._stopping.set()  # invocations cut short by the shutdown are not news
        self._async.shutdown(wait=False, cancel_futures=True)
        for pool in self._pools.values():
            with pool.lock:
                processes, pool.processes = list(pool.processes), []
            for number, process in enumerate(processes, start=1):
                process.stop(PROCESS_STOP_TIMEOUT_S)
                self._save_output(pool.spec.key, number, process)
            pool.runtime.stop()

    def _save_output(self, key: str, number: int, process: RuntimeProcess) -> None:
        """The runtime's output (its log lines) to `<log_dir>/<function>-<n>.log`."""
        if self.log_dir is None:
            return
        self.log_dir.mkdir(parents=True, exist_ok=True)
        (self.log_dir / f"{key}-{number}.log").write_text("\n".join(process.output) + "\n")

    def missing(self) -> list[str]:
        return [key for key, present in self.available.items() if not present]

    def require(self, key: str) -> None:
        if key not in self._pools:
            raise FunctionUnavailableError(f"function {key!r} is not in this checkout "
                                           f"({self.stack.function(key).handler})")

    def output(self, key: str, lines: int = 20) -> list[str]:
        """The last output lines of the function's runtimes (for a report on a failed step)."""
        pool = self._pools.get(key)
        if pool is None:
            return []
        with pool.lock:
            collected = [line for process in pool.processes for line in process.output]
        return collected[-lines:]

    def update_environment(self, key: str, changes: Mapping[str, str | None],
                           idle_timeout_s: float = 30.0) -> dict[str, str | None]:
        """Set (None: remove) variables of one function's environment once it is idle, as
        `UpdateFunctionConfiguration` does: "Lambda provisions an instance of the function" with the new
        settings (https://docs.aws.amazon.com/lambda/latest/api/API_UpdateFunctionConfiguration.html), so
        its environments (processes and Runtime API) are replaced and the next invocation is a cold start.
        Returns the previous values: `update_environment(key, previous)` puts them back.

        Example (not run: needs started runtimes):
            >>> before = service.update_environment("dashboard", {"LOG_LEVEL": "DEBUG"})   # doctest: +SKIP
            >>> service.update_environment("dashboard", before)                            # doctest: +SKIP
        """
        self.require(key)
        pool = self._pools[key]
        end = time.monotonic() + idle_timeout_s
        while True:  # invocations in flight end on the environments they have
            with pool.lock:
                if not pool.in_flight:
                    previous = {name: pool.environment.get(name) for name in changes}
                    for name, value in changes.items():
                        if value is None:
                            pool.environment.pop(name, None)
                        else:
                            pool.environment[name] = value
                    # A new Runtime API too: a stopped runtime's pending `next` poll must not take an event.
                    retired, pool.runtime = pool.runtime, RuntimeApi(pool.spec, self.daemon_address).start()
                    processes, pool.processes, pool.crashes = pool.processes, [], 0
                    break
                busy = pool.in_flight
            if time.monotonic() > end:
                raise TimeoutError(f"{key}: still {busy} invocation(s) in flight after {idle_timeout_s:g} s")
            time.sleep(0.05)
        for process in processes:
            process.stop(PROCESS_STOP_TIMEOUT_S)
        retired.stop()
        self.console.event("config", key, detail="environment updated: " + ", ".join(sorted(changes)))
        return previous

    # invocation ----------------------------------------------------------------------------------
    def invoke(self, key: str, event: Any, upstream: TraceHeader | None = None,
               upstream_segment_written: bool = False, attempt: int = 1,
               asynchronous: bool = False) -> tuple[Any, Invocation]:
        """RequestResponse: the parsed result, or FunctionError (the `Invoke` protocol of sns_delivery).

        TooManyRequestsException when the function is at its reserved concurrency. `asynchronous`: an
        Event invocation's attempt, which waits for a free environment instead (Lambda queues the event).
        """
        self.require(key)
        pool = self._pools[key]
        cold = self._acquire(pool, throttle=not asynchronous)
        started = time.monotonic()
        try:
            call = pool.runtime.invoke(event, upstream=upstream, upstream_segment_written=upstream_segment_written)
            try:
                result = call.result()
            except FunctionError as error:
                self._record(pool, call, started, "error", error.error_type, attempt, cold)
                raise
        finally:
            self._release(pool)
        self._record(pool, call, started, "ok", None, attempt, cold)
        return result, call.invocation

    def invoke_event(self, key: str, event: Any, upstream: TraceHeader | None = None,
                     upstream_segment_written: bool = False) -> tuple[Any, Invocation]:
        """Event invocation, run to its end in the calling thread: retries, then the DLQ. A function
        error is not raised: it is Lambda's to handle (console line, retries, dead-letter queue);
        the result is then None. (Only a stack shutting down mid-invocation raises.)"""
        last: FunctionError | None = None
        for attempt in range(1, ASYNC_RETRIES + 2):
            if attempt > 1:
                time.sleep(self.retry_delays_s[min(attempt - 2, len(self.retry_delays_s) - 1)])
            try:
                return self.invoke(key, event, upstream, upstream_segment_written, attempt, asynchronous=True)
            except FunctionError as error:
                if error.invocation is None:  # the runtime was stopped under it: no retry, no dead letter
                    raise
                last = error
        assert last is not None
        self._dead_letter(key, event, last)
        return None, last.invocation

    def submit(self, work: Callable[[], Any]) -> None:
        """Run `work` (an Event invocation, an SNS delivery) on the service's threads; `wait_idle` waits for it."""
        def run() -> None:
            try:
                work()
            except Exception as error:  # an executor would keep it in a future nobody reads: say it instead
                if not self._stopping.is_set():
                    self.console.event("error", "lambda-service", outcome=type(error).__name__,
                                       detail=str(error)[:200])
            finally:
                with self._pending_cv:
                    self._pending -= 1
                    self._pending_cv.notify_all()

        with self._pending_cv:
            if self._stopping.is_set():  # the stack is stopping: late work is dropped, as queued work is
                return
            self._pending += 1
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
        """RESPONSE_STREAM: the environment is held until the invocation ends (the function returns or
        times out; a caller's `close()` does not end it). TooManyRequestsException past the function's
        reserved concurrency: the Function URL answers 429 (`throttle_reply`)."""
        self.require(key)
        pool = self._pools[key]
        cold = self._acquire(pool, throttle=True)
        started = time.monotonic()
        call = pool.runtime.invoke(event, upstream=upstream)
        with self._records_lock:
            self._streams.add(call)

        def finished(outcome: str, error_type: str | None) -> None:
            self._release(pool)
            with self._records_lock:
                self._streams.discard(call)
            self._record(pool, call, started, outcome, error_type, 1, cold)

        return StreamingCall(call, finished)

    def wait_streams(self, timeout_s: float = 30.0) -> bool:
        """True once every stream has ended (its facade segments written): before reading its trace."""
        end = time.monotonic() + timeout_s
        while True:
            with self._records_lock:
                open_calls = list(self._streams)
            if not open_calls:
                return True
            if time.monotonic() >= end or not open_calls[0].wait(max(0.0, end - time.monotonic())):
                return False
            time.sleep(0.05)  # let `finished` run

    # environments --------------------------------------------------------------------------------
    def throttles(self, key: str) -> int:
        """How many invocations of the function were throttled (its `Throttles` metric, summed)."""
        pool = self._pools.get(key)
        return 0 if pool is None else pool.throttles

    def _acquire(self, pool: _Pool, throttle: bool) -> bool:
        """Count one invocation in flight; start one more environment when every one is busy. True: cold.

        One invocation per execution environment
        (https://docs.aws.amazon.com/lambda/latest/dg/lambda-concurrency.html). A function with reserved
        concurrency never runs more at once: past it a synchronous invocation (`throttle`) is refused
        with TooManyRequestsException and counted in `Throttles`; an Event invocation waits for an
        environment, as Lambda's event queue holds it.

        A runtime process that exited is dropped first (Lambda replaces a crashed environment); when
        even a fresh one cannot start, the caller gets FunctionUnavailableError with its last output.
        """
        with pool.lock:
            dead = [process for process in pool.processes if process.exit_code() is not None]
            for process in dead:
                pool.processes.remove(process)
                self.console.event("runtime", pool.spec.key, outcome=f"exited {process.exit_code()}",
                                   detail=" | ".join(list(process.output)[-2:])[:160])
            if dead and not pool.processes and pool.runtime.init_error is None and pool.crashes >= 3:
                raise FunctionUnavailableError(
                    f"{pool.spec.key}: its runtime keeps exiting: {' | '.join(list(dead[-1].output)[-3:])[:500]}")
            pool.crashes += len(dead)
            reserved = pool.spec.reserved_concurrency
            throttled = throttle and reserved is not None and pool.in_flight >= reserved
            if throttled:
                pool.throttles += 1
            else:
                pool.in_flight += 1
                if pool.in_flight > len(pool.processes) and len(pool.processes) < pool.max_environments:
                    self._spawn_locked(pool)
                    return True
                return False
        self._count_throttle(pool)  # outside the lock: a CloudWatch call
        raise TooManyRequestsException(pool.spec.name, pool.max_environments)

    def _release(self, pool: _Pool) -> None:
        with pool.lock:
            pool.in_flight -= 1

    def _count_throttle(self, pool: _Pool) -> None:
        """The throttle as Lambda reports it: a `Throttles` datum (AWS/Lambda, per FunctionName) on the
        stack's CloudWatch, and a console line."""
        boto3.client("cloudwatch").put_metric_data(Namespace=THROTTLES_NAMESPACE, MetricData=[{
            "MetricName": "Throttles", "Dimensions": [{"Name": "FunctionName", "Value": pool.spec.name}],
            "Value": 1.0, "Unit": "Count"}])
        self.console.event("throttle", pool.spec.key, outcome="429 TooManyRequestsException",
                           detail=f"reserved concurrency {pool.spec.reserved_concurrency} in use")

    def _spawn_locked(self, pool: _Pool) -> None:
        runner = self._runners.get(pool.spec.key)
        process = (runner(pool.runtime, pool.environment) if runner else
                   RuntimeProcess(pool.runtime, runtime_command(pool.spec), pool.environment)).start()
        pool.processes.append(process)

    # bookkeeping ---------------------------------------------------------------------------------
    def _record(self, pool: _Pool, call: ResponseStream, started: float, outcome: str, error_type: str | None,
                attempt: int, cold: bool) -> None:
        # The function's own time, from the moment a runtime took the event (queueing excluded), as Lambda bills.
        begun = call.delivered_at if call.delivered_at is not None else started
        ended = call.completed_at if call.completed_at is not None else time.monotonic()
        invocation = call.invocation
        record = InvocationRecord(pool.spec.key, invocation.trace_header.root, invocation.request_id,
                                  invocation.sampled, max(0.0, ended - begun) * 1000, outcome, error_type,
                                  attempt, cold)
        with self._records_lock:
            self.records.append(record)
        if self._stopping.is_set():
            return
        detail = " ".join(part for part in (
            "scaled out" if cold else "", f"attempt {attempt}" if attempt > 1 else "",
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


class ThrottledReply(BufferedReply):
    """The Function URL's answer to a throttled invocation: 429, `x-amzn-ErrorType: TooManyRequestsException`,
    the error as JSON (TooManyRequestsException.body); a whole reply, as the edge relays a stream.
    Nothing to release on close: no environment was taken.

    Example:
        >>> reply = ThrottledReply(TooManyRequestsException("fn", 2))
        >>> reply.status, json.loads(b"".join(reply.chunks()))["Reason"]
        (429, 'ReservedFunctionConcurrentInvocationLimitExceeded')
    """

    def __init__(self, error: TooManyRequestsException):
        body = json.dumps(error.body()).encode()
        super().__init__(error.status, [("content-type", "application/json"), ("x-amzn-ErrorType", error.error_type),
                                        ("content-length", str(len(body)))], body)
        self.error = error


class StreamingCall:
    """A RESPONSE_STREAM invocation as the gateway relays it (devstack.edge.cloudfront.StreamingReply)."""

    def __init__(self, call: ResponseStream, finished: Callable[[str, str | None], None]):
        self._call = call
        self._finished = finished
        self._done = False
        self._lock = threading.Lock()
        self.invocation: Invocation = call.invocation
        try:
            self.status, self.headers = call.prelude()
        except BaseException:
            self.close()
            raise

    def chunks(self) -> Iterator[bytes]:
        yield from self._call.chunks()

    def close(self) -> None:
        """The client is gone (or the relay is done): cut the function's response; it notices on its next write."""
        with self._lock:
            if self._done:
                return
            self._done = True
        self._call.close()
        threading.Thread(target=self._settle, name="stream-settle", daemon=True).start()

    def _settle(self) -> None:
        """Record the invocation once it really ended (the function saw the disconnect, or its deadline)."""
        self._call.wait()
        error = self._call.error
        self._finished("streamed" if error is None else "error", None if error is None else error.error_type)

    def wait(self, timeout_s: float | None = None) -> bool:
        return self._call.wait(timeout_s)

    @property
    def error(self) -> FunctionError | None:
        """The function's error once the stream ended (None while running or when it succeeded)."""
        return self._call.error

