"""Benchmark 5: live latency and cost per viewer, as classic Lambda runs the SSE function.

Every viewer is its own execution environment: its own process running the image's real
`bootstrap` under its own local Runtime API (`SseFunction`, devstack.lambda_), one invocation at a
time, as Lambda runs a function with one concurrent request per environment. Every stream ends
itself after `SSE_STREAM_LIFETIME_S`, shortened here to `LIFETIME_S` so that several resumes
happen inside each measurement; the client resumes at once with `Last-Event-ID`, as the browser
does. A writer stores analysed items at random moments and bumps the change marker, as the
analysis Lambda does; latency = `sentiment_update` frame received - `put_item` acknowledged.

Two designs, in the same run, with the same settle delay and the same read interval:
- ours (the stack map's settings): the change marker is read every `SSE_MARKER_INTERVAL_S`, the
  index is queried when it moved (and every `SSE_POLL_INTERVAL_S` as a safety net);
- naive: no marker; every stream queries the index alone every `SSE_MARKER_INTERVAL_S`.

What each run counted (all invocations sampled; OTel spans and X-Ray documents counted as they
arrive) becomes the cost per viewer-hour, priced with the list prices in `PRICES`.

    python benchmarks/run.py --only live
"""

from __future__ import annotations

import json
import math
import os
import random
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from benchmarks.common import Row, SseFunction, percentile

LIFETIME_S = 20  # the stack's is 120 s: shortened so every viewer resumes inside the measurement
MEASURE_S = {1: 30, 10: 30, 100: 30}
PLAN = [("ours", 1), ("naive", 1), ("ours", 10), ("ours", 100), ("naive", 100)]
COST_VIEWERS = (1, 100)
IDLE_S = 10  # first, nothing is written: what a viewer costs while no news arrives
# News arrives in bursts: an ingestion run (every 5 minutes in the stack) stores several stories and
# the analysis function scores them within seconds. Here a burst comes every BURST_GAP_S.
BURST_GAP_S = (6.0, 14.0)
BURST_ITEMS = 5
ITEM_GAP_S = (0.05, 0.4)
DRAIN_S = 6.0  # after the last write: time for it to arrive
TARGET_P95_S = 1.0
TARGET_READ_RATIO = 0.5
ITEM_BYTES_OVERHEAD = 100  # per item in a global secondary index (its keys and overhead)

# AWS list prices, us-east-1, as of 2026-12-06 (this machine cannot reach the pages; figures as
# published there, the DynamoDB ones after the on-demand price cut of 2024-11-01):
PRICES = {
    # https://aws.amazon.com/dynamodb/pricing/on-demand/ : read request unit (one eventually consistent read
    # of up to 4 KB is half of one... see rcu()), write request unit
    "dynamodb_rru": 0.125 / 1e6, "dynamodb_wru": 0.625 / 1e6,
    # https://aws.amazon.com/lambda/pricing/ : x86, per GB-second and per request
    "lambda_gb_s": 0.0000166667, "lambda_request": 0.20 / 1e6,
    # https://aws.amazon.com/cloudwatch/pricing/ : PutMetricData, per request
    "cloudwatch_request": 0.01 / 1000,
    # https://aws.amazon.com/xray/pricing/ : traces recorded
    "xray_trace": 5.00 / 1e6,
}
# infrastructure/terraform/environments/*.tfvars: xray_sampling_rate (beyond the fleet-wide reservoir
# of one trace a second, left out of a per-viewer figure)
SAMPLING = {"dev": 1.0, "preprod": 1.0, "prod": 0.1}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CPU_VIEWERS = 1  # the demand of 100 viewers is extrapolated from this scenario's CPU per viewer (never starved)


def process_cpu_s(pid: int) -> float:
    """CPU seconds a process has used, all its threads: utime + stime, fields 14 and 15 of
    `/proc/<pid>/stat` (proc(5)); the command name before them may hold spaces, hence the split at ')'."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy, all cores and all processes (ours and anyone's):
    the `cpu` line of /proc/stat less idle and iowait (proc(5))."""
    with open("/proc/stat") as stat:
        user, nice, system, _idle, _iowait, *rest = (int(value) for value in stat.readline().split()[1:])
    return (user + nice + system + sum(rest[:3])) / CLOCK_TICKS  # irq, softirq, steal; guest is inside user


@dataclass(frozen=True)
class Cpu:
    """CPU seconds one phase used, over `wall_s` seconds: the environments' processes (summed), this
    benchmark's own process (client, Runtime APIs, moto, trace receivers: one interpreter), the machine."""

    environments_s: float
    benchmark_s: float
    machine_s: float
    wall_s: float

    def per_wall_s(self) -> tuple[float, float, float]:
        return self.environments_s / self.wall_s, self.benchmark_s / self.wall_s, self.machine_s / self.wall_s


class CpuMeter:
    """Reads the CPU counters of `pids` and of this process at `start()` and `stop()`.

    Example:
        >>> meter = CpuMeter([]); meter.start(); meter.stop().benchmark_s >= 0
        True
    """

    def __init__(self, pids: list[int]):
        self.pids = pids
        self._started: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def _read(self) -> tuple[float, float, float, float]:
        return (sum(process_cpu_s(pid) for pid in self.pids), process_cpu_s(os.getpid()), machine_busy_s(),
                time.monotonic())

    def start(self) -> None:
        self._started = self._read()

    def stop(self) -> Cpu:
        now = self._read()
        environments, benchmark, machine, wall = (after - before for after, before in zip(now, self._started,
                                                                                            strict=True))
        return Cpu(environments, benchmark, machine, wall)


# A phase observer (benchmarks/profile_live.py): called with the phase's name ("no news", "news") and the
# environments' process ids; the phase runs inside the context it returns.
PhaseObserver = Callable[[str, list[int]], AbstractContextManager[object]]


def item_bytes(item: dict[str, Any]) -> int:
    """DynamoDB's size of an item: attribute names plus values (strings UTF-8, numbers ~1 byte per two
    digits + 1): https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html"""
    size = 0
    for name, value in item.items():
        size += len(name.encode())
        if isinstance(value, str):
            size += len(value.encode())
        else:
            size += len(str(value).replace(".", "").lstrip("-0")) // 2 + 1
    return size


def rcu(bytes_read: int) -> float:
    """Read units of one eventually consistent GetItem or Query: the size read, summed (Query) and
    rounded up to the next 4 KB, half a unit per 4 KB; a read of nothing still costs the minimum:
    https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html"""
    return 0.5 * max(1, math.ceil(bytes_read / 4096))


class Tally:
    """Counts what the function sent to X-Ray (daemon: handler phase; OTLP: stream phase)."""

    def __init__(self, item_size: int):
        self.item_size = item_size
        self.lock = threading.Lock()
        self.documents = 0
        self.calls: Counter[str] = Counter()
        self.read_units = 0.0

    def submit(self, raw_document: str) -> None:
        text = raw_document.split("\n", 1)[-1] if not raw_document.startswith("{") else raw_document
        document = json.loads(text)
        with self.lock:
            self.documents += 1
            if document.get("namespace") != "aws" or document.get("origin"):
                return
            operation = f"{document['name']}.{document.get('aws', {}).get('operation')}"
            self.calls[operation] += 1
            if operation == "DynamoDB.GetItem":
                self.read_units += rcu(64)  # the marker: a few bytes
            elif operation == "DynamoDB.Query":
                count = int(document.get("annotations", {}).get("item_count", 0))
                self.read_units += rcu(count * self.item_size)

    def wait_idle(self, timeout_s: float = 10.0) -> bool:
        return True

    def snapshot(self) -> tuple[int, Counter[str], float]:
        with self.lock:
            return self.documents, Counter(self.calls), self.read_units


@dataclass
class Viewer:
    """One browser: streams, resuming with Last-Event-ID at every `reconnect`, until stopped."""

    sse: SseFunction
    ticker: str
    stop: threading.Event
    received: dict[str, float] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    duplicates: int = 0
    streams: int = 0
    frames: int = 0  # every event received: updates, heartbeats, metrics, reconnects
    stream_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)

    def run(self) -> None:
        last_id: str | None = None
        while not self.stop.is_set():
            started = time.monotonic()
            call = self.sse.open(headers={"Last-Event-ID": last_id} if last_id else None,
                                 timeout_s=LIFETIME_S + 60)
            status, _ = call.prelude(120)
            if status != 200:
                self.errors.append(f"status {status}: {call.error}")
                return
            self.streams += 1
            buffer = b""
            for chunk in call.chunks():
                now = time.monotonic()
                buffer += chunk
                *frames, buffer = buffer.split(b"\n\n")
                self.frames += len(frames)
                for frame in frames:
                    fields = dict(line.split(": ", 1) for line in frame.decode().split("\n") if ": " in line)
                    last_id = fields.get("id", last_id)
                    if fields.get("event") == "sentiment_update":
                        self._record(json.loads(fields["data"]), now)
                if self.stop.is_set():
                    break
            call.close()
            self.stream_seconds += time.monotonic() - started

    def _record(self, data: dict[str, Any], now: float) -> None:
        if data["ticker"] != self.ticker:
            return
        if data["item_id"] in self.received:
            self.duplicates += 1
            return
        self.received[data["item_id"]] = now
        self.order.append(data["item_id"])


class Writer:
    """Analysed items stored at random moments, each announced as the analysis function does."""

    def __init__(self, table: Any, news: Any, ticker: str, seed: int):
        self.table, self.news, self.ticker = table, news, ticker
        self.random = random.Random(seed)
        self.written: dict[str, float] = {}
        self.order: list[str] = []

    def item(self) -> dict[str, Any]:
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
        return {"item_id": secrets.token_hex(16), "published_at": stamp, "ticker": self.ticker,
                "headline": f"{self.ticker} moves on a story of typical length for a market news headline",
                "summary": "A summary of two sentences, as the sources send. " * 3, "source": "tiingo",
                "url": "https://news.example.com/markets/2026/12/06/a-story", "status": "analyzed",
                "status_changed_at": stamp, "ingested_at": stamp, "analyzed_at": stamp,
                "sentiment_label": "positive", "sentiment_score": Decimal("0.5123"),
                "analysis_trace_id": "1-6752a1b0-0123456789abcdef01234567", "expires_at": int(now) + 3600}

    def write(self) -> None:
        item = self.item()
        self.table.put_item(Item=item)
        self.written[item["item_id"]] = time.monotonic()
        self.order.append(item["item_id"])
        self.news.announce_analysed(item["status_changed_at"])

    def run(self, until: float, stop: threading.Event | None = None) -> None:
        """Bursts of writes (news arrives in bursts) until `until` (monotonic) or `stop` is set;
        benchmark 7 runs it in a thread: `Thread(target=writer.run, args=(math.inf, stop))`."""
        stop = stop or threading.Event()
        while time.monotonic() < until:
            if stop.wait(self.random.uniform(*BURST_GAP_S)):
                return
            for _ in range(BURST_ITEMS):
                if stop.wait(self.random.uniform(*ITEM_GAP_S)):
                    return
                self.write()


@dataclass
class Counts:
    """What one phase of a scenario counted."""

    viewer_hours: float
    streams: int
    stream_seconds: float
    documents: int
    calls: Counter[str]
    read_units: float
    events: int  # frames the clients received
    cpu: Cpu

    def reads(self) -> int:
        """DynamoDB reads the streams made: marker GetItems and index Queries."""
        return self.calls["DynamoDB.GetItem"] + self.calls["DynamoDB.Query"]


@dataclass
class Outcome:
    design: str
    viewers: int
    latencies: list[float]
    lost: int
    duplicated: int
    out_of_order: int
    items: int
    idle: Counts
    live: Counts
    load: str


def scenario(design: str, viewers: int, overrides: dict[str, str], stack: dict[str, Any],
             observe: PhaseObserver | None = None) -> Outcome:
    """`viewers` environments streaming for MEASURE_S while items are written; `observe`, when given,
    wraps each phase (a profiler)."""
    tally: Tally = stack["make_tally"]()
    daemon, receiver = stack["XRayDaemon"](tally).start(), stack["OtlpReceiver"](tally).start()
    functions = [SseFunction(stack["endpoint"], stack["resources"], daemon.address, receiver.endpoint, overrides)
                 for _ in range(viewers)]
    stop = threading.Event()
    ticker = f"L{viewers}{design[:2].upper()}{secrets.token_hex(2).upper()}"
    try:
        for function in functions:
            function.__enter__()
        warm = [function.open("/api/v2/stream/status", timeout_s=120) for function in functions]
        assert all(call.prelude(180)[0] == 200 for call in warm), "an environment did not start"
        clients = [Viewer(function, ticker, stop) for function in functions]
        threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
        for thread in threads:
            thread.start()
        _wait_for(lambda: all(client.streams or client.errors for client in clients), 120)

        pids = [function.pid for function in functions]
        meter = CpuMeter(pids)

        def phase(seconds: float) -> Counts:
            with observe("no news" if seconds else "news", pids) if observe else nullcontext():
                documents, calls, units = tally.snapshot()
                streams, events = sum(c.streams for c in clients), sum(c.frames for c in clients)
                meter.start()
                started = time.monotonic()
                if seconds:
                    time.sleep(seconds)
                else:
                    writer.run(started + MEASURE_S[viewers])
                    time.sleep(DRAIN_S)
                elapsed = time.monotonic() - started
                cpu = meter.stop()
                documents_after, calls_after, units_after = tally.snapshot()
            # a stream is billed for its whole duration: the phase's wall time, each viewer streaming throughout
            return Counts(viewers * elapsed / 3600, sum(c.streams for c in clients) - streams,
                          viewers * elapsed, documents_after - documents, calls_after - calls, units_after - units,
                          sum(c.frames for c in clients) - events, cpu)

        writer = Writer(stack["table"], stack["news"], ticker, seed=viewers)
        idle = phase(IDLE_S)
        live = phase(0)
        stop.set()
        load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
        for thread in threads:
            thread.join(LIFETIME_S + 30)
    finally:
        for function in functions:
            function.__exit__(None, None, None)
        receiver.stop()
        daemon.stop()
    latencies = [client.received[item] - writer.written[item] for client in clients for item in writer.written
                 if item in client.received]
    errors = [error for client in clients for error in client.errors]
    if errors:
        raise RuntimeError(f"{design}, {viewers} viewers: {errors[:3]}")
    return Outcome(
        design, viewers, latencies,
        lost=sum(len(writer.written) - len(client.received) for client in clients),
        duplicated=sum(client.duplicates for client in clients),
        out_of_order=sum(1 for client in clients if client.order != [i for i in writer.order if i in client.received]),
        items=len(writer.written), idle=idle, live=live, load=load)


def cost_rows(label: str, counts: Counts, memory_mb: int, stack_lifetime_s: float) -> tuple[list[Row], float]:
    """The cost per viewer-hour of one phase from what it counted; dollars per 1,000 viewer-hours."""
    hours = counts.viewer_hours
    read_units = counts.read_units / hours
    gb_s = counts.stream_seconds * memory_mb / 1024 / hours
    requests = counts.streams / hours
    requests_at_stack = 3600 / stack_lifetime_s
    puts = counts.calls["CloudWatch.PutMetricData"] / hours
    documents = counts.documents / hours
    dollars = {env: 1000 * (read_units * PRICES["dynamodb_rru"] + gb_s * PRICES["lambda_gb_s"]
                            + requests_at_stack * PRICES["lambda_request"] + puts * PRICES["cloudwatch_request"]
                            + requests_at_stack * rate * PRICES["xray_trace"])
               for env, rate in SAMPLING.items()}
    rows = [
        Row("5 cost", f"{label}: DynamoDB read units per viewer-hour ({counts.calls['DynamoDB.GetItem'] / hours:.0f} "
            f"marker GetItem + {counts.calls['DynamoDB.Query'] / hours:.0f} Query)", f"{read_units:.0f} RRU", "-",
            None),
        Row("5 cost", f"{label}: Lambda GB-seconds ({memory_mb} MB) and requests per viewer-hour (at this run's "
            f"{LIFETIME_S} s lifetime / at the stack's {stack_lifetime_s:g} s)",
            f"{gb_s:.0f} GB-s, {requests:.0f} / {requests_at_stack:.0f} requests", "-", None),
        Row("5 cost", f"{label}: PutMetricData calls and X-Ray documents per viewer-hour, all sampled (prod samples "
            f"{SAMPLING['prod']:g}: {documents * SAMPLING['prod']:.0f} documents in "
            f"{requests_at_stack * SAMPLING['prod']:.0f} traces)", f"{puts:.0f} calls, {documents:.0f} documents",
            "-", None),
        Row("5 cost", f"{label}: $ per 1,000 viewer-hours at the stack's lifetime, dev / preprod / prod sampling "
            "(DynamoDB reads + Lambda + PutMetricData + X-Ray traces)",
            " / ".join(f"${value:.2f}" for value in dollars.values()), "-", None),
    ]
    return rows, read_units


@dataclass
class LiveStack:
    """What every scenario runs on: moto with the stack's resources, the stack map's SSE function, and
    each design's environment overrides."""

    parts: dict[str, Any]  # scenario()'s `stack`
    designs: dict[str, dict[str, str]]
    memory_mb: int
    env: dict[str, str]


@contextmanager
def live_stack() -> Iterator[LiveStack]:
    """moto started with the stack's resources (stopped on exit); the SSE function as the stack map sets it."""
    import boto3

    from devstack.aws.moto_server import MotoServer
    from devstack.aws.resources import create_resources
    from devstack.stack import load_stack
    from devstack.xray.daemon import XRayDaemon
    from devstack.xray.otlp_receiver import OtlpReceiver
    from lib.news.store import NewsTable
    from lib.tables import dynamodb

    function = load_stack().function("sse_streaming")
    env = function.env
    moto = MotoServer().start()
    try:
        os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
        boto3.setup_default_session()
        dynamodb.cache_clear()  # an earlier benchmark of this process may have made it for its own moto
        resources = create_resources(load_stack())
        table_name = resources.tables["news"]
        size = item_bytes(Writer(None, None, "L100OUABCD", 0).item()) + ITEM_BYTES_OVERHEAD
        parts = {"endpoint": moto.endpoint, "resources": resources,
                 "table": boto3.resource("dynamodb").Table(table_name), "news": NewsTable(table_name),
                 "XRayDaemon": XRayDaemon, "OtlpReceiver": OtlpReceiver, "make_tally": lambda: Tally(size)}
        lifetime = {"SSE_STREAM_LIFETIME_S": str(LIFETIME_S)}
        designs = {"ours": lifetime,
                   "naive": {**lifetime, "SSE_MARKER_INTERVAL_S": "0",
                             "SSE_POLL_INTERVAL_S": env["SSE_MARKER_INTERVAL_S"]}}
        yield LiveStack(parts, designs, function.memory_mb, dict(env))
    finally:
        moto.stop()


def run() -> list[Row]:
    with live_stack() as live:
        return _run(live)


def _run(live: LiveStack) -> list[Row]:
    env, stack, designs = live.env, live.parts, live.designs
    marker_s, settle_ms = env["SSE_MARKER_INTERVAL_S"], env["SSE_INDEX_SETTLE_MS"]
    plan = PLAN
    rows: list[Row] = []
    outcomes: dict[tuple[str, int], Outcome] = {}
    for design, viewers in plan:
        print(f"  {design}, {viewers} viewers ...", flush=True)
        outcomes[design, viewers] = outcome = scenario(design, viewers, designs[design], stack)
        rows += latency_rows(outcome, marker_s, settle_ms) + cpu_rows(outcome, float(marker_s))
    read_units = {}
    for (design, viewers), outcome in outcomes.items():
        if viewers not in COST_VIEWERS:
            continue
        for phase, counts in (("no news", outcome.idle), (f"{outcome.items} items", outcome.live)):
            label = f"{design}, {viewers} viewer{'s' if viewers > 1 else ''}, {phase}"
            cost, read_units[design, viewers, phase == "no news"] = cost_rows(
                label, counts, live.memory_mb, float(env["SSE_STREAM_LIFETIME_S"]))
            rows += cost
    for viewers in COST_VIEWERS:
        for idle in (True, False):
            ratio = read_units["ours", viewers, idle] / read_units["naive", viewers, idle]
            rows.append(Row("5 cost", f"{viewers} viewer{'s' if viewers > 1 else ''}, "
                            f"{'no news' if idle else 'news in bursts'}: DynamoDB read units per viewer-hour, "
                            f"ours / naive (both read every {marker_s} s)", f"x{ratio:.2f}",
                            f"<= {TARGET_READ_RATIO}", ratio <= TARGET_READ_RATIO))
    rows += demand_rows(outcomes, float(marker_s), max(viewers for _, viewers in plan))
    return rows


def cpu_rows(outcome: Outcome, read_interval_s: float) -> list[Row]:
    """Where the CPU went in each phase: the environments, this process, the machine (anyone's)."""
    label = f"{outcome.design}, {outcome.viewers} viewer{'s' if outcome.viewers > 1 else ''}"
    rows = []
    for phase, counts in (("no news", outcome.idle), ("news", outcome.live)):
        environments, benchmark, machine = counts.cpu.per_wall_s()
        reads = counts.reads()
        per_read_ms = 1000 * (counts.cpu.environments_s + counts.cpu.benchmark_s) / reads if reads else 0.0
        rows.append(Row(
            "5 cpu", f"{label}, {phase}: CPU-s per wall-s of the environments / this benchmark's process (client, "
            f"Runtime APIs, moto, trace receivers) / the whole machine ({os.cpu_count()} cores, anyone's); DynamoDB "
            f"reads done per s of the {outcome.viewers / read_interval_s:g} planned; CPU (both) per read done",
            f"{environments:.2f} / {benchmark:.2f} / {machine:.2f}; {reads / counts.cpu.wall_s:.1f} reads/s; "
            f"{per_read_ms:.1f} ms", "-", None))
    return rows


def demand_rows(outcomes: dict[tuple[str, int], Outcome], read_interval_s: float, viewers: int) -> list[Row]:
    """The CPU that `viewers` environments need to keep the read schedule, from a scenario that kept it
    (CPU_VIEWERS: one environment never waits for a core): CPU per viewer-second times `viewers`."""
    rows = []
    for design in ("ours", "naive"):
        outcome = outcomes.get((design, CPU_VIEWERS))
        if outcome is None:
            continue
        demand = []
        for counts in (outcome.idle, outcome.live):
            per_viewer = (counts.cpu.environments_s + counts.cpu.benchmark_s) / counts.cpu.wall_s / CPU_VIEWERS
            demand.append(per_viewer * viewers)
        rows.append(Row(
            "5 cpu", f"{design}: CPU that {viewers} environments and their share of this process need to read every "
            f"{read_interval_s:g} s, from the {CPU_VIEWERS}-viewer run's CPU per viewer-second x {viewers}, "
            f"no news / news", f"{demand[0]:.1f} / {demand[1]:.1f} CPU-s per s vs {os.cpu_count()} cores", "-", None))
    return rows


def latency_rows(outcome: Outcome, marker_s: str, settle_ms: str) -> list[Row]:
    label = f"{outcome.design}, {outcome.viewers} viewer{'s' if outcome.viewers > 1 else ''}"
    values = outcome.latencies
    p50, p95, worst = (percentile(values, .5), percentile(values, .95), max(values)) if values else (0, 0, 0)
    return [
        Row("5 live", f"{label} (one environment each; read every {marker_s} s, settle {settle_ms} ms, lifetime "
            f"{LIFETIME_S} s: {outcome.idle.streams + outcome.live.streams} streams, load {outcome.load}): "
            f"write -> event over {len(values)} deliveries, p50 / p95 / max",
            f"{p50 * 1000:.0f} / {p95 * 1000:.0f} / {worst * 1000:.0f} ms",
            f"p95 <= {TARGET_P95_S * 1000:.0f} ms", p95 <= TARGET_P95_S),
        Row("5 live", f"{label}: {outcome.items} items, events lost / duplicated / viewers out of order",
            f"{outcome.lost} / {outcome.duplicated} / {outcome.out_of_order}", "0 / 0 / 0",
            outcome.lost == outcome.duplicated == outcome.out_of_order == 0),
    ]


def _wait_for(done: Any, timeout_s: float) -> None:
    end = time.monotonic() + timeout_s
    while not done() and time.monotonic() < end:
        time.sleep(0.05)
