"""Benchmark 1: warm-invocation overhead of tracing, per batch Lambda, traced vs tracing disabled.

Two worker processes play two execution environments of one function, one traced and one with
`POWERTOOLS_TRACE_DISABLED=true` (the Tracer decides at construction, and the X-Ray SDK's
disable switch is process-global, so the modes cannot share a process). Each imports the handler
and warms it up; then the parent has them take turns, one warm invocation at a time in ABBA order,
through `devstack.lambda_.invocation.invoke_in_process` on realistic work. Taking turns puts both
modes under the same background load, which on this shared 2-core machine swings by tens of
percent within a minute; separate runs could not resolve 5 %.

Everything the function talks to (moto, the fake news sources, the SendGrid sink) lives in this
parent process; the X-Ray daemon is a counting UDP receiver in a third process. So:
- wall time per invocation is what Lambda bills: mostly moto answering on loopback;
- the worker's CPU time per invocation is the function's own work (handler, botocore, tracing);
- a no-I/O figure (`micro`) isolates the SDK's CPU cost per subsegment, and the expected ratio
  follows from it: 1 + subsegments x cost / untraced wall time.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

if __package__ in (None, ""):  # run as a worker script: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import ROOT, Row, median, percentile

INVOCATIONS = {"ingestion": 80, "analysis": 160, "dashboard": 160, "notification": 160, "metrics": 160}
WARMUP = 3
MICRO_ROUNDS = 4
TARGET_RATIO = 1.05
WORLD_ENV = "BENCH_WORLD"  # JSON handed from the parent to each worker: endpoints the world listens on


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

        from devstack.aws.resources import create_resources
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
        from devstack.lambda_.events import scheduled_event

        table = self.dynamodb.Table(self.resources.tables["news"])
        items = table.scan(ProjectionExpression="item_id, published_at", ConsistentRead=True)["Items"]
        if items:
            table.delete_item(Key=sorted(items, key=lambda i: i["item_id"])[index % len(items)])
        return scheduled_event(self.stack.function("ingestion"))

    def _analysis(self, index: int) -> Any:
        from devstack.aws.sns_delivery import Publication, SnsDelivery

        message = _store_pending(self.dynamodb.Table(self.resources.tables["news"]))
        publication = Publication(self.resources.topics["news_items"], json.dumps(message), None,
                                  str(uuid.uuid4()), None, time.time())
        return SnsDelivery(self.stack, self.resources, "127.0.0.1:2000").event(publication)

    def _dashboard(self, index: int) -> Any:
        # The dashboard's busiest call: the latest sentiment and counts of two tickers.
        from devstack.edge.api_gateway import ApiGateway, GatewayRequest
        from lib.tracing.header import TraceHeader, new_entity_id

        request = GatewayRequest("GET", "/api/v2/sentiment", "tickers=AAPL,MSFT",
                                 {"Origin": "http://localhost:5173", "Accept": "application/json"})
        forwarded = TraceHeader.new_root().with_parent(new_entity_id(), True)
        return ApiGateway(lambda *a, **k: None, "127.0.0.1:2000").proxy_event(  # type: ignore[arg-type, return-value]
            request, forwarded, str(uuid.uuid4()), time.time())

    def _notification(self, index: int) -> Any:
        # A score that crosses one of the ticker's three rules: one email through the SendGrid sink.
        from devstack.aws.sns_delivery import Publication, SnsDelivery
        from lib.news.model import iso_ms

        now = dt.datetime.now(dt.UTC)
        message = {"item_id": uuid.uuid4().hex, "published_at": iso_ms(now - dt.timedelta(minutes=3)),
                   "ticker": "AAPL", "headline": "Shares rally as revenue beats estimates", "label": "positive",
                   "score": 0.62, "analyzed_at": iso_ms(now)}
        publication = Publication(self.resources.topics["sentiment_scored"], json.dumps(message), None,
                                  str(uuid.uuid4()), None, time.time())
        return SnsDelivery(self.stack, self.resources, "127.0.0.1:2000").event(publication)

    def _metrics(self, index: int) -> Any:
        from devstack.lambda_.events import scheduled_event

        return scheduled_event(self.stack.function("metrics"))


def serve(key: str, mode: str, results_fd: int) -> None:
    """Run in a fresh process: one warm invocation per event read on stdin (one JSON per line).

    The parent prepares every event (`Scenario.event`): done here, its AWS calls would go through the
    botocore the Tracer patched, outside any invocation, and the X-Ray SDK would log each one as a
    subsegment "discarded due to Lambda worker still initializing".
    Timings go to `results_fd` (stdout belongs to the handler's log lines), one JSON per invocation.
    """
    if mode == "disabled":
        os.environ["POWERTOOLS_TRACE_DISABLED"] = "true"
    world = json.loads(os.environ[WORLD_ENV])
    os.environ["AWS_ENDPOINT_URL"] = world["aws_endpoint"]
    from devstack.lambda_.invocation import invoke_in_process

    scenario = Scenario(key, world)  # before the handler's import: its resource calls are not patched
    spec = scenario.stack.function(key)
    with os.fdopen(results_fd, "w", buffering=1) as results:
        results.write("ready\n")
        for line in sys.stdin:
            event = json.loads(line)
            started_cpu, started = time.process_time(), time.perf_counter()
            invoke_in_process(spec, event, scenario.env, world["daemon_address"])
            elapsed, elapsed_cpu = time.perf_counter() - started, time.process_time() - started_cpu
            results.write(json.dumps({"wall_us": elapsed * 1e6, "cpu_us": elapsed_cpu * 1e6}) + "\n")


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

        @staticmethod
        def get_remaining_time_in_millis() -> int:
            return 900_000

    out.write_text(json.dumps(handler({}, Context())))


# --- parent side: the world, the turns, the figures ----------------------------------------------------

def _available(key: str) -> bool:
    from devstack.lambda_.lambda_service import code_present
    from devstack.stack import load_stack

    return code_present(load_stack().function(key))


class Worker:
    """One `serve` process, driven one invocation at a time."""

    def __init__(self, key: str, mode: str, world: dict[str, Any]):
        read_fd, write_fd = os.pipe()
        env = {**os.environ, WORLD_ENV: json.dumps(world), "PYTHONPATH": str(ROOT)}
        env.pop("POWERTOOLS_TRACE_DISABLED", None)
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--serve", key, "--mode", mode,
             "--results-fd", str(write_fd)],
            env=env, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, pass_fds=(write_fd,))
        os.close(write_fd)
        self.results: IO[str] = os.fdopen(read_fd)

    def ready(self) -> None:
        if self.results.readline().strip() != "ready":
            raise RuntimeError(f"worker failed to start (exit {self.process.wait()})")

    def invoke(self, event: Any) -> dict[str, float]:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(event) + "\n")
        self.process.stdin.flush()
        line = self.results.readline()
        if not line:
            raise RuntimeError(f"worker died (exit {self.process.wait()})")
        return dict(json.loads(line))

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)
        self.results.close()


@dataclass
class Measurement:
    wall_us: dict[str, list[float]] = field(default_factory=lambda: {"traced": [], "disabled": []})
    cpu_us: dict[str, list[float]] = field(default_factory=lambda: {"traced": [], "disabled": []})
    subsegments: float = 0.0  # per traced invocation
    documents: float = 0.0  # the datagrams that carried them

    def ratio(self, figure: str) -> float:
        values = getattr(self, figure)
        return median(values["traced"]) / median(values["disabled"])

    def pair_ratios(self, figure: str) -> list[float]:
        """traced / disabled of each turn's two invocations (run back to back)."""
        values = getattr(self, figure)
        return [t / d for t, d in zip(values["traced"], values["disabled"], strict=True)]


def measure(key: str, world: dict[str, Any], daemon: Any, invocations: int) -> Measurement:
    measurement = Measurement()
    datagrams_before, subsegments_before = daemon.counts()
    scenario = Scenario(key, world)  # prepares each event here, in the parent: no tracer, no patched client
    workers = {mode: Worker(key, mode, world) for mode in ("traced", "disabled")}
    try:
        for worker in workers.values():
            worker.ready()
        for index in range(WARMUP):
            for worker in workers.values():
                worker.invoke(scenario.event(index))
        for turn in range(invocations):
            # ABBA: neither mode always runs first (the first of a pair may find moto warmer or colder).
            for mode in ("traced", "disabled") if turn % 4 in (0, 3) else ("disabled", "traced"):
                result = workers[mode].invoke(scenario.event(WARMUP + 2 * turn + (mode == "disabled")))
                measurement.wall_us[mode].append(result["wall_us"])
                measurement.cpu_us[mode].append(result["cpu_us"])
    finally:
        for worker in workers.values():
            worker.close()
    daemon.settle()
    per_mode = WARMUP + invocations
    datagrams, subsegments = daemon.counts()
    # Both modes' invocations send the Lambda service's two facade segments: not tracing cost.
    measurement.documents = (datagrams - datagrams_before - 2 * 2 * per_mode) / per_mode
    measurement.subsegments = (subsegments - subsegments_before) / per_mode
    return measurement


def rows_for(key: str, measured: Measurement, aws_call_cost_us: float) -> list[Row]:
    wall_pairs, cpu_pairs = measured.pair_ratios("wall_us"), measured.pair_ratios("cpu_us")
    wall_ratio, cpu_ratio = measured.ratio("wall_us"), measured.ratio("cpu_us")
    wall_t, wall_d = median(measured.wall_us["traced"]), median(measured.wall_us["disabled"])
    cpu_t, cpu_d = median(measured.cpu_us["traced"]), median(measured.cpu_us["disabled"])
    expected = 1 + measured.subsegments * aws_call_cost_us / wall_d
    n = len(measured.wall_us["traced"])

    def spread(pairs: list[float]) -> str:
        return f"pairs p25-p75 {percentile(pairs, .25):.2f}-{percentile(pairs, .75):.2f}"

    return [
        Row("1 overhead", f"{key}: wall per warm invocation, traced / disabled (n={n} each, {spread(wall_pairs)})",
            f"{wall_t / 1000:.1f} / {wall_d / 1000:.1f} ms, x{wall_ratio:.3f}", f"ratio <= {TARGET_RATIO}",
            wall_ratio <= TARGET_RATIO),
        Row("1 overhead", f"{key}: function CPU per warm invocation, traced / disabled ({spread(cpu_pairs)})",
            f"{cpu_t / 1000:.1f} / {cpu_d / 1000:.1f} ms, x{cpu_ratio:.3f}", "-", None),
        Row("1 overhead", f"{key}: {measured.subsegments:.1f} subsegments in {measured.documents:.1f} documents per "
            "invocation; ratio expected from the no-I/O cost", f"x{expected:.3f}", f"<= {TARGET_RATIO}",
            expected <= TARGET_RATIO),
    ]


def micro_rows(daemon_address: str) -> tuple[list[Row], float]:
    """Rows, and the CPU cost of one traced AWS call subsegment (µs)."""
    results: dict[str, list[dict[str, float]]] = {"traced": [], "disabled": []}
    for round_index in range(MICRO_ROUNDS):
        for mode in ("traced", "disabled") if round_index % 2 == 0 else ("disabled", "traced"):
            with tempfile.TemporaryDirectory() as scratch:
                out = Path(scratch) / "micro.json"
                subprocess.run([sys.executable, str(Path(__file__).resolve()), "--micro", mode,
                                "--daemon", daemon_address, "--out", str(out)],
                               env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT, check=True, timeout=300)
                results[mode].append(json.loads(out.read_text()))
    rows, costs = [], {}
    for figure, label in (("method_us", "capture_method subsegment"), ("aws_call_us", "AWS call subsegment")):
        traced = median([r[figure] for r in results["traced"]])
        disabled = median([r[figure] for r in results["disabled"]])
        costs[figure] = traced - disabled
        rows.append(Row("1 overhead", f"CPU per {label}, no I/O (traced - disabled)",
                        f"{traced - disabled:.0f} µs ({traced:.0f} vs {disabled:.0f})", "-", None))
    return rows, costs["aws_call_us"]


def _seed_alert_rules(config_table: str) -> None:
    """Three AAPL rules: the notification scenario's score (+0.62) crosses one of them."""
    from lib.alerts import AlertTable, Direction

    alerts = AlertTable(config_table)
    now = dt.datetime.now(dt.UTC)
    alerts.create("bench-owner", "AAPL", Direction.ABOVE, 0.3, "portfolio.manager@example.com", now)
    alerts.create("bench-owner", "AAPL", Direction.BELOW, -0.3, "risk.desk@example.com", now)
    alerts.create("bench-owner", "AAPL", Direction.ABOVE, 0.9, "trader@example.com", now)


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

    def counts(self) -> tuple[int, int]:
        """(datagrams, subsegments in them, nested ones included) received so far."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write("count\n")
        datagrams, subsegments = self._process.stdout.readline().split()
        return int(datagrams), int(subsegments)

    def settle(self, quiet_s: float = 0.2) -> None:
        """Wait until no datagram arrived for `quiet_s`."""
        seen = (-1, -1)
        while seen != (now := self.counts()):
            seen = now
            time.sleep(quiet_s)

    def __exit__(self, *exc: object) -> None:
        assert self._process.stdin is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)


def count_udp() -> None:
    """The counting daemon's process: prints its address, then answers each stdin line with the
    datagrams and the subsegments received (parsed on request, not while the functions send)."""
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    receiver.bind(("127.0.0.1", 0))
    received: list[bytes] = []

    def receive() -> None:
        while True:
            received.append(receiver.recv(65535))

    threading.Thread(target=receive, daemon=True).start()
    host, port = receiver.getsockname()
    print(f"{host}:{port}", flush=True)
    from devstack.xray.trace_reader import flatten

    parsed, subsegments = 0, 0
    for _ in sys.stdin:
        for datagram in received[parsed:len(received)]:
            document = json.loads(datagram.split(b"\n", 1)[1])
            subsegments += sum(entity.get("type") == "subsegment" for entity in flatten(document, document["trace_id"]))
            parsed += 1
        print(parsed, subsegments, flush=True)


def run() -> list[Row]:
    import boto3

    from devstack.aws.moto_server import MotoServer
    from devstack.aws.resources import create_resources
    from devstack.fakes.news_sources import FakeNewsServer, seed_ingestion
    from devstack.fakes.sendgrid_sink import SendGridSink
    from devstack.stack import load_stack
    from devstack.xray.pipeline import TracePipeline

    rows: list[Row] = []
    moto = MotoServer().start()
    try:
        with FakeNewsServer() as news_server, SendGridSink() as sendgrid:
            os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
            boto3.setup_default_session()
            resources = create_resources(load_stack())
            seed_ingestion(news_server, resources.secrets["news_api"], resources.tables["config"])
            sendgrid.store_api_key(resources.secrets["sendgrid"])
            _seed_alert_rules(resources.tables["config"])
            world: dict[str, Any] = {
                "aws_endpoint": moto.endpoint,
                "env_overrides": {"ingestion": news_server.environment(), "notification": sendgrid.environment()}}
            with CountingDaemon() as daemon:
                world["daemon_address"] = daemon.address
                micro, aws_call_cost = micro_rows(daemon.address)
                rows.extend(micro)
                for key, invocations in INVOCATIONS.items():
                    if not _available(key):
                        rows.append(Row("1 overhead", f"{key}: not measured (handler not landed yet)", "-", "-", None))
                        continue
                    rows.extend(rows_for(key, measure(key, world, daemon, invocations), aws_call_cost))
            # The same, with the devstack's whole trace pipeline (daemon -> sink -> moto's X-Ray) in
            # moto's process: what a local run feels like, not what the function pays.
            with TracePipeline(moto=moto) as pipeline:
                world["daemon_address"] = pipeline.daemon.address
                full = measure("analysis", world, _PipelineCounter(pipeline), INVOCATIONS["analysis"] // 2)
                rows.append(Row("1 overhead", "analysis, daemon = the whole local trace pipeline in moto's process",
                                f"{median(full.wall_us['traced']) / 1000:.1f} / "
                                f"{median(full.wall_us['disabled']) / 1000:.1f} ms, x{full.ratio('wall_us'):.3f}",
                                "- (devstack cost)", None))
    finally:
        moto.stop()
    return rows


class _PipelineCounter:
    """`CountingDaemon`'s interface over the devstack pipeline's daemon."""

    def __init__(self, pipeline: Any):
        self._pipeline = pipeline

    def counts(self) -> tuple[int, int]:
        return int(self._pipeline.daemon.stats.datagrams), 0

    def settle(self) -> None:
        self._pipeline.settle(30)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--count-udp", action="store_true")
    parser.add_argument("--micro", choices=("traced", "disabled"))
    parser.add_argument("--daemon")
    parser.add_argument("--serve")
    parser.add_argument("--mode", choices=("traced", "disabled"))
    parser.add_argument("--results-fd", type=int)
    parser.add_argument("--out", type=Path)
    arguments = parser.parse_args()
    if arguments.count_udp:
        count_udp()
    elif arguments.micro:
        micro(arguments.micro, arguments.daemon, arguments.out)
    else:
        serve(arguments.serve, arguments.mode, arguments.results_fd)
