"""Benchmark 1: warm-invocation overhead of tracing, per batch Lambda, traced vs tracing disabled.

Each measurement runs in its own worker process (the Tracer decides at construction and the
X-Ray SDK's disable switch is process-global), playing one Lambda execution environment. The
worker imports the handler, warms it up, then times N warm invocations through
`devstack.lambda_service.invoke_in_process` on realistic work: everything the function talks to
(moto, the X-Ray daemon, the fake news sources) lives in this parent process, so the worker's
CPU time is the function's own work (handler, botocore, tracing) and nothing else.

Two figures per function, traced / disabled:
- wall time per invocation (what Lambda bills): dominated by moto answering on loopback;
- worker CPU time per invocation: the cost tracing adds, without moto's share.
Rounds alternate the two modes so drift on this shared machine hits both alike; medians of
all invocations. µs per subsegment = (traced - disabled) / subsegments sent per invocation.

    python benchmarks/run.py --only overhead
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a worker script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, Row, median

ROUNDS = 3
INVOCATIONS = {"ingestion": 30, "analysis": 60, "dashboard": 60, "notification": 60, "metrics": 60}
WARMUP = 3
TARGET_RATIO = 1.05
WORLD_ENV = "BENCH_WORLD"  # JSON handed from the parent to each worker: endpoints the world listens on


@dataclass
class Sample:
    wall_us: list[float]
    cpu_us: list[float]


# --- worker side: one execution environment -----------------------------------------------------------

def _store_pending(news_table: Any, ticker: str = "AAPL") -> dict[str, str]:
    """A `pending` item as ingestion stores it; returns its `news_items` message."""
    from lib.news.model import Article, NewsItem

    now = dt.datetime.now(dt.UTC)
    headline = f"Shares rally as quarterly revenue beats estimates {uuid.uuid4().hex[:8]}"
    article = Article("tiingo", ticker, headline, "Analysts raised their targets after strong demand.",
                      f"https://news.example.com/{uuid.uuid4().hex}", now - dt.timedelta(minutes=2))
    item = NewsItem.from_article(article, now)
    news_table.put_item(Item=item.to_item())
    return item.message()


class Scenario:
    """What one function's warm invocation works on; `event()` prepares (untimed) the next one."""

    def __init__(self, key: str, world: dict[str, Any]):
        import boto3

        from devstack.aws import create_resources
        from devstack.stack import load_stack

        self.key = key
        self.stack = load_stack()
        self.resources = create_resources(self.stack)
        self.env = {name: self.resources.resolve(value) for name, value in self.stack.function(key).env.items()}
        self.env.update(world.get("env_overrides", {}).get(key, {}))
        self.dynamodb = boto3.resource("dynamodb")
        self._prepare: Callable[[int], Any] = getattr(self, f"_{key}")

    def event(self, index: int) -> Any:
        return self._prepare(index)

    def _ingestion(self, index: int) -> Any:
        # Steady state: every run sees the day's stories again (dedup) and one of them is new
        # (deleted here before the run), so each run also writes and publishes one item.
        from devstack.functions import scheduled_event

        table = self.dynamodb.Table(self.resources.tables["news"])
        items = table.scan(ProjectionExpression="item_id, published_at", ConsistentRead=True)["Items"]
        if items:
            table.delete_item(Key=sorted(items, key=lambda i: i["item_id"])[index % len(items)])
        return scheduled_event(self.stack.function("ingestion"))

    def _analysis(self, index: int) -> Any:
        from devstack.sns_delivery import Publication, SnsDelivery

        message = _store_pending(self.dynamodb.Table(self.resources.tables["news"]))
        publication = Publication(self.resources.topics["news_items"], json.dumps(message), None,
                                  str(uuid.uuid4()), None, time.time())
        return SnsDelivery(self.stack, self.resources, "127.0.0.1:2000").event(publication)


def worker(key: str, mode: str, invocations: int, out: Path) -> None:
    """Run in a fresh process: time `invocations` warm invocations of `key` in `mode`."""
    if mode == "disabled":
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    world = json.loads(os.environ[WORLD_ENV])
    os.environ["AWS_ENDPOINT_URL"] = world["aws_endpoint"]
    from devstack.lambda_service import invoke_in_process

    scenario = Scenario(key, world)
    spec = scenario.stack.function(key)
    wall: list[float] = []
    cpu: list[float] = []
    for index in range(WARMUP + invocations):
        event = scenario.event(index)
        started_cpu, started = time.process_time(), time.perf_counter()
        invoke_in_process(spec, event, scenario.env, world["daemon_address"])
        elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
        if index >= WARMUP:
            wall.append(elapsed * 1e6)
            cpu.append(elapsed_cpu * 1e6)
    out.write_text(json.dumps({"wall_us": wall, "cpu_us": cpu}))


def micro(mode: str, daemon_address: str, out: Path) -> None:
    """Run in a fresh process: the tracing cost per subsegment with no I/O at all (µs per operation).

    A `capture_method` call, and an AWS call answered by botocore's Stubber (the X-Ray botocore
    patch runs, no HTTP is sent), inside one traced handler as Lambda runs it.
    """
    os.environ.update({
        "_X_AMZN_TRACE_ID": "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1",
        "AWS_XRAY_DAEMON_ADDRESS": daemon_address, "AWS_LAMBDA_FUNCTION_NAME": "bench-micro",
        "POWERTOOLS_SERVICE_NAME": "bench-micro", "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
    })
    if mode == "disabled":
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    import boto3
    from botocore.stub import Stubber

    from lib.tracing.powertools import lambda_tracer, traced_handler

    tracer = lambda_tracer()
    batches, per_batch = 9, 400
    client = boto3.client("dynamodb", region_name="us-east-1", endpoint_url="http://127.0.0.1:9")
    stubber = Stubber(client)
    for _ in range(batches * per_batch + 100):
        stubber.add_response("get_item", {"Item": {"pk": {"S": "x"}}})
    stubber.activate()

    @tracer.capture_method(capture_response=False)
    def method() -> int:
        return 1

    def aws_call() -> None:
        client.get_item(TableName="t", Key={"pk": {"S": "x"}})

    def timed(operation: Callable[[], Any]) -> float:
        for _ in range(100):
            operation()
        results = []
        for _ in range(batches):
            started = time.process_time()
            for _ in range(per_batch):
                operation()
            results.append((time.process_time() - started) / per_batch * 1e6)
        return median(results)

    @traced_handler(tracer)
    def handler(event: Any, context: Any) -> dict[str, float]:
        return {"method_us": timed(method), "aws_call_us": timed(aws_call)}

    class Context:
        aws_request_id = "bench-micro"
        function_name = "bench-micro"

    out.write_text(json.dumps(handler({}, Context())))


def micro_rows(daemon_address: str) -> list[Row]:
    results: dict[str, list[dict[str, float]]] = {"traced": [], "disabled": []}
    for round_index in range(ROUNDS):
        for mode in ("traced", "disabled") if round_index % 2 == 0 else ("disabled", "traced"):
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(scratch) / "micro.json"
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--micro", mode,
                                "--daemon", daemon_address, "--out", str(out)],
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, check=True, timeout=300)
                results[mode].append(json.loads(out.read_text()))
    rows = []
    for figure, label in (("method_us", "capture_method subsegment"), ("aws_call_us", "AWS call subsegment")):
        traced = median([r[figure] for r in results["traced"]])
        disabled = median([r[figure] for r in results["disabled"]])
        rows.append(Row("1 overhead", f"CPU per {label}, no I/O (traced - disabled)",
                        f"{traced - disabled:.0f} µs ({traced:.0f} vs {disabled:.0f})", "-", None))
    return rows


# --- parent side: the world, the rounds, the figures ---------------------------------------------------

def _available(key: str) -> bool:
    from devstack.functions import code_present
    from devstack.stack import load_stack

    return code_present(load_stack().function(key))


def _run_worker(key: str, mode: str, world: dict[str, Any]) -> Sample:
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "result.json"
        env = {**os.environ, WORLD_ENV: json.dumps(world), "PYTHONPATH": str(ROOT)}
        env.pop("POWERTOOLS_TRACE_DISABLED", None)
        subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--worker", key, "--mode", mode,
             "--invocations", str(INVOCATIONS[key]), "--out", str(out)],
            env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, timeout=900,
        )
        data = json.loads(out.read_text())
    return Sample(data["wall_us"], data["cpu_us"])


def measure(key: str, world: dict[str, Any], daemon: Any, rounds: int = ROUNDS) -> tuple[Sample, Sample, float]:
    """(traced, disabled, subsegments per traced invocation), rounds alternating the modes."""
    traced, disabled = Sample([], []), Sample([], [])
    documents = 0
    for round_index in range(rounds):
        order = ("traced", "disabled") if round_index % 2 == 0 else ("disabled", "traced")
        for mode in order:
            daemon.settle()
            before = daemon.datagrams
            sample = _run_worker(key, mode, world)
            daemon.settle()
            target = traced if mode == "traced" else disabled
            target.wall_us += sample.wall_us
            target.cpu_us += sample.cpu_us
            if mode == "traced":
                documents += daemon.datagrams - before
    invocations = rounds * (WARMUP + INVOCATIONS[key])
    # The Lambda service's two facade segments per invocation are sent in both modes: not tracing cost.
    subsegments = documents / invocations - 2
    return traced, disabled, subsegments


def rows_for(key: str, traced: Sample, disabled: Sample, subsegments: float) -> list[Row]:
    wall_t, wall_d = median(traced.wall_us), median(disabled.wall_us)
    cpu_t, cpu_d = median(traced.cpu_us), median(disabled.cpu_us)
    wall_ratio, cpu_ratio = wall_t / wall_d, cpu_t / cpu_d
    per_sub_wall = (wall_t - wall_d) / subsegments if subsegments > 0 else float("nan")
    per_sub_cpu = (cpu_t - cpu_d) / subsegments if subsegments > 0 else float("nan")
    return [
        Row("1 overhead", f"{key}: wall per warm invocation, traced / disabled (n={len(traced.wall_us)})",
            f"{wall_t / 1000:.1f} / {wall_d / 1000:.1f} ms = x{wall_ratio:.3f}", f"ratio <= {TARGET_RATIO}",
            wall_ratio <= TARGET_RATIO),
        Row("1 overhead", f"{key}: function CPU per warm invocation, traced / disabled",
            f"{cpu_t / 1000:.1f} / {cpu_d / 1000:.1f} ms = x{cpu_ratio:.3f}", "-", None),
        Row("1 overhead", f"{key}: per subsegment ({subsegments:.1f} per invocation), wall / CPU",
            f"{per_sub_wall:.0f} / {per_sub_cpu:.0f} µs", "-", None),
    ]


class CountingDaemon:
    """A UDP endpoint, in its own process, that only counts datagrams: the cheapest daemon a
    function can send to.

    The function's side of tracing (build, serialise, `sendto`) is what this benchmark measures.
    In its own process because a receiving thread inside moto's process takes moto's GIL at the
    very moment moto finishes answering, which slowed every traced AWS call by itself; the
    devstack's daemon also goes on to store each document in moto, work real Lambda does
    elsewhere.
    """

    def __enter__(self) -> CountingDaemon:
        self._process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--count-udp"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
        assert self._process.stdout is not None
        self.address = self._process.stdout.readline().strip()
        return self

    @property
    def datagrams(self) -> int:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("count\n")
        return int(self._process.stdout.readline())

    def settle(self, quiet_s: float = 0.2) -> None:
        """Wait until no datagram arrived for `quiet_s`."""
        seen = -1
        while seen != (now := self.datagrams):
            seen = now
            time.sleep(quiet_s)

    def __exit__(self, *exc: object) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)


def count_udp() -> None:
    """The counting daemon's process: prints its address, then answers each stdin line with the count."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    receiver.bind(("127.0.0.1", 0))
    counted = [0]

    def receive() -> None:
        while True:
            receiver.recv(65535)
            counted[0] += 1

    threading.Thread(target=receive, daemon=True).start()
    host, port = receiver.getsockname()
    print(f"{host}:{port}", flush=True)
    for _ in sys.stdin:
        print(counted[0], flush=True)


def run() -> list[Row]:
    import boto3

    from devstack.aws import MotoServer, create_resources
    from devstack.news_sources import FakeNewsServer, seed_ingestion
    from devstack.pipeline import TracePipeline
    from devstack.stack import load_stack

    rows: list[Row] = []
    moto = MotoServer().start()
    try:
        with FakeNewsServer() as news_server:
            os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
            boto3.setup_default_session()
            resources = create_resources(load_stack())
            seed_ingestion(news_server, resources.secrets["news_api"], resources.tables["config"])
            world = {"aws_endpoint": moto.endpoint, "env_overrides": {"ingestion": news_server.environment()}}
            with CountingDaemon() as daemon:
                world["daemon_address"] = daemon.address
                rows.extend(micro_rows(daemon.address))
                for key in INVOCATIONS:
                    if not hasattr(Scenario, f"_{key}") or not _available(key):
                        rows.append(Row("1 overhead", f"{key}: not measured (handler not landed yet)", "-", "-", None))
                        continue
                    traced, disabled, subsegments = measure(key, world, daemon)
                    rows.extend(rows_for(key, traced, disabled, subsegments))
            # The same, with the devstack's whole trace pipeline (daemon -> sink -> moto's X-Ray) in
            # moto's process: what a local run feels like, not what the function pays.
            with TracePipeline(moto=moto) as pipeline:
                world["daemon_address"] = pipeline.daemon.address
                traced, disabled, subsegments = measure("analysis", world, _PipelineCounter(pipeline), rounds=2)
                wall_ratio = median(traced.wall_us) / median(disabled.wall_us)
                rows.append(Row("1 overhead", "analysis with the full local trace pipeline in moto's process",
                                f"{median(traced.wall_us) / 1000:.1f} / {median(disabled.wall_us) / 1000:.1f} ms"
                                f" = x{wall_ratio:.3f}", "- (devstack cost)", None))
    finally:
        moto.stop()
    return rows


class _PipelineCounter:
    """`CountingDaemon`'s interface over the devstack pipeline's daemon."""

    def __init__(self, pipeline: Any):
        self._pipeline = pipeline

    @property
    def datagrams(self) -> int:
        return int(self._pipeline.daemon.stats.datagrams)

    def settle(self) -> None:
        self._pipeline.settle(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count-udp", action="store_true")
    parser.add_argument("--micro", choices=("traced", "disabled"))
    parser.add_argument("--daemon")
    parser.add_argument("--worker")
    parser.add_argument("--mode", choices=("traced", "disabled"))
    parser.add_argument("--invocations", type=int)
    parser.add_argument("--out", type=Path)
    arguments = parser.parse_args()
    if arguments.count_udp:
        count_udp()
    elif arguments.micro:
        micro(arguments.micro, arguments.daemon, arguments.out)
    else:
        worker(arguments.worker, arguments.mode, arguments.invocations, arguments.out)
