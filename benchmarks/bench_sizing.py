"""Benchmark 7: the SSE function sized as Lambda sizes it, and what a viewer costs at each size.

The function runs as its container image, the way the devstack runs it (devstack.lambda_.container:
the stand-in collector extension registered first, then the ENTRYPOINT, in the same container), with
`--memory` (no swap) and `--cpus` set from the memory size by Lambda's ratio, 1,769 MB = one vCPU
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html): Lambda runs extensions
inside the function's memory limit, so runtime and extension share the cgroup. For each size:

- init: Lambda's Init phase, the extensions spawned -> the runtime's first `GET /next` (extension init,
  runtime start and the handler's import; the phase ends when the runtime and every extension have
  asked for their next event). Lambda gives it 10 s, then retries it at the first invocation under the
  function's timeout (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html,
  "Init phase"): a size whose init passes INIT_LIMIT_S is flagged;
- cold start: from the same start to the first byte of the first stream's body (init + the first
  invocation's work); beside it the container's own start (vfs copying the image: not Lambda's);
- write -> event p50 / p95: benchmark 5's writer (bench_live.Writer: analysed items in bursts, each
  stored, then announced by bumping the feed's change marker, as the analysis function does) for
  STREAM_S seconds while one viewer streams, resuming with `Last-Event-ID` at every stream end (the
  lifetime is shortened to LIFETIME_S so resumes fall inside the run);
- peak memory of runtime + extension: the sum of each process's `VmHWM` (its own RSS high-water
  mark, /proc/<pid>/status, read before the container stops: exact, no sampling) and the cgroup v1
  `memory.max_usage_in_bytes` (includes page cache, which the kernel reclaims before an OOM kill),
  and the cgroup's `oom_kill` count;
- $ per continuously connected viewer-month at Lambda list prices (below), x86_64 measured; arm64
  priced only (not measured: the collector layer is pinned for amd64, and this machine has no arm64).

    python benchmarks/bench_sizing.py [--sizes 128,256] [--stream-s 60]
    python benchmarks/run.py --only sizing
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_live import Writer
from benchmarks.common import CountingSink, Row, percentile

SIZES_MB = (128, 192, 256, 512, 1024)  # 192: the size between the two cheapest, under $10 x86
STREAM_S = float(os.environ.get("BENCH_SIZING_STREAM_S", "60"))  # per size: a few minutes at most in all
LIFETIME_S = 20  # the stream lifetime in the run (the stack's is 120 s): 3+ resumes per size
IMAGE_TAG = "sentiment-analyzer-sse:bench"  # its own tag: the devstack's and the tests' stay theirs

# Lambda list prices, us-east-1, first pricing tier, read 2026-12-06 from https://aws.amazon.com/lambda/pricing/
PRICE_PER_GB_S = {"x86_64": 0.0000166667, "arm64": 0.0000133334}
PRICE_PER_REQUEST = 0.20 / 1_000_000
SECONDS_PER_MONTH = 30 * 86_400

# Goals (issue 23). Issue 19's cold-start goal is a ratio, ours <= 0.5 x the ADOT layer's start in the
# same interpreter, judged by bench_init at each size's CPU share: the cold start here is the whole
# container's (extension init included, which the ADOT layer's collector extension pays too: the layer
# runs a reduced ADOT Collector as a Lambda extension,
# https://aws-otel.github.io/docs/getting-started/lambda/lambda-python) and has no bound of its own.
GOAL_COST = 10.0
GOAL_P95_S = 1.0
GOAL_HEADROOM = 0.30
# Lambda's limit on the Init phase (on-demand functions): lambda-runtime-environment.html, "Init phase".
INIT_LIMIT_S = 10.0


def lambda_cpus(memory_mb: int) -> float:
    """Lambda's CPU share at `memory_mb` (1,769 MB = one vCPU).

    >>> round(lambda_cpus(1769), 3)
    1.0
    """
    from devstack.lambda_.container import MB_PER_VCPU

    return memory_mb / MB_PER_VCPU


def viewer_month_cost(memory_mb: int, architecture: str, lifetime_s: float) -> float:
    """$ for one viewer connected all month: GB-seconds held for the whole stream (Lambda bills
    memory_mb / 1024 GB per second) plus one request per stream lifetime (every resume is an invocation).

    >>> round(viewer_month_cost(1024, "x86_64", 120), 2)
    43.2
    """
    gb_seconds = memory_mb / 1024 * SECONDS_PER_MONTH
    return gb_seconds * PRICE_PER_GB_S[architecture] + SECONDS_PER_MONTH / lifetime_s * PRICE_PER_REQUEST


@dataclass
class Viewer:
    """One viewer resuming with Last-Event-ID: when each `sentiment_update` arrived, by item id."""

    ticker: str
    received: dict[str, float] = field(default_factory=dict)
    last_id: str | None = None
    resumes: int = 0
    duplicates: int = 0
    ends: list[str] = field(default_factory=list)

    def read(self, call: Any) -> None:
        buffer = b""
        for chunk in call.chunks():
            now = time.monotonic()
            buffer += chunk
            *frames, buffer = buffer.split(b"\n\n")
            for frame in frames:
                fields = dict(line.split(": ", 1) for line in frame.decode().split("\n") if ": " in line)
                if "id" in fields:
                    self.last_id = fields["id"]
                if fields.get("event") == "reconnect":
                    self.ends.append(json.loads(fields["data"])["reason"])
                if fields.get("event") != "sentiment_update":
                    continue
                item_id = json.loads(fields["data"])["item_id"]
                if item_id in self.received:
                    self.duplicates += 1
                else:
                    self.received[item_id] = now


@dataclass
class SizeResult:
    memory_mb: int
    container_start_s: float
    init_s: float
    cold_start_s: float
    p50_s: float
    p95_s: float
    delivered: int
    written: int
    duplicates: int
    resumes: int
    peak_rss_mb: float
    cgroup_peak_mb: float
    oom_kills: int
    runtime_exit: int | None
    processes: dict[str, float] = field(default_factory=dict)  # VmHWM by process name, MB

    @property
    def headroom(self) -> float:
        return (self.memory_mb - self.peak_rss_mb) / self.peak_rss_mb

    @property
    def cost(self) -> float:
        return viewer_month_cost(self.memory_mb, "x86_64", stack_lifetime_s())

    def goals(self) -> dict[str, bool]:
        return {"cost": self.cost <= GOAL_COST, "p95": self.p95_s <= GOAL_P95_S,
                "init": self.init_s < INIT_LIMIT_S,
                "headroom": self.headroom >= GOAL_HEADROOM,
                "no loss": self.delivered == self.written and self.duplicates == 0 and self.runtime_exit is None}


def stack_lifetime_s() -> float:
    from devstack.stack import load_stack

    return float(load_stack().function("sse_streaming").env["SSE_STREAM_LIFETIME_S"])


def _docker(*args: str) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def memory_figures(container_name: str) -> tuple[dict[str, float], float, int]:
    """(VmHWM of each of the sandbox's processes but its holder and the reader, by name; cgroup peak;
    OOM kills), MB.
    The cgroup is read first, with `cat`, so the reading's own process barely enters it."""
    cgroup = "/sys/fs/cgroup/memory"
    peak = int(_docker("exec", container_name, "cat", f"{cgroup}/memory.max_usage_in_bytes"))
    oom = _docker("exec", container_name, "cat", f"{cgroup}/memory.oom_control")
    kills = int(next((line.split()[1] for line in oom.splitlines() if line.startswith("oom_kill ")), "0"))
    # One line per process: "<VmHWM kB>|<argv>" (kernel threads and exited readers have no VmHWM).
    script = ('for p in /proc/[0-9]*; do '
              'h=$(sed -n "s/^VmHWM:[[:space:]]*\\([0-9]*\\) kB/\\1/p" $p/status 2>/dev/null); '
              '[ -n "$h" ] && echo "$h|$(tr "\\0" " " < $p/cmdline)"; done')
    measured: dict[str, float] = {}
    for line in _docker("exec", container_name, "sh", "-c", script).splitlines():
        kb, argv = line.split("|", 1)
        if argv.split(" ", 1)[0] in {"sleep", "sh", "sed", "tr"}:  # the sandbox's holder and this reading
            continue
        role = "extension" if "/opt/extensions/" in argv else "runtime" if "bootstrap" in argv else argv.strip()
        measured[role] = measured.get(role, 0.0) + int(kb) / 1024
    return measured, peak / 1_048_576, kills


def measure(memory_mb: int | None, image: Any, moto: Any, resources: Any, daemon: Any, receiver: Any, table: Any,
            news: Any, stream_s: float) -> SizeResult:
    from devstack.lambda_.container import ContainerRuntime
    from devstack.lambda_.events import function_url_event
    from devstack.lambda_.invocation import lambda_environment
    from devstack.lambda_.runtime_api import RuntimeApi
    from devstack.stack import load_stack

    spec = load_stack().function("sse_streaming")
    runtime = RuntimeApi(spec, daemon.address)
    resolved = {name: resources.resolve(value) for name, value in spec.env.items()}
    environment = {**moto.environment(),
                   **lambda_environment(spec, {**resolved, "SSE_STREAM_LIFETIME_S": str(LIFETIME_S)}, daemon.address)}
    container = ContainerRuntime(runtime, image, environment, receiver.endpoint, memory_mb=memory_mb)
    viewer = Viewer(f"SIZE{memory_mb or 'HOST'}")
    writer = Writer(table, news, viewer.ticker, seed=memory_mb or 0)
    stop_writing = threading.Event()
    writing = threading.Thread(target=writer.run, args=(math.inf, stop_writing), daemon=True)
    runtime.start()
    began = time.monotonic()
    try:
        container.start()
        call = runtime.invoke(function_url_event("GET", "/api/v2/stream"), timeout_s=LIFETIME_S + 60)
        first_chunk = next(call.chunks(), None)
        if first_chunk is None:
            raise RuntimeError(f"{memory_mb} MB: no first byte: {call.error} {list(container.output)[-20:]}")
        init_started = container.init_started_at
        assert init_started is not None and container.endpoint is not None
        cold_start = time.monotonic() - init_started
        extensions_ready, runtime_ready = container.endpoint.extensions.ready_at(), runtime.stats.first_next_at
        if extensions_ready is None or runtime_ready is None:
            raise RuntimeError(f"{memory_mb} MB: a first byte before init ended ({extensions_ready}, {runtime_ready})")
        init = max(extensions_ready, runtime_ready) - init_started
        writing.start()
        reader = threading.Thread(target=viewer.read, args=(call,), daemon=True)
        reader.start()

        def stream_until(done: Any, deadline: float) -> None:
            """Read, resuming with Last-Event-ID at every stream end (as a browser does), until `done()`."""
            nonlocal call, reader
            while not done() and time.monotonic() < deadline and container.exit_code() is None:
                reader.join(0.2)
                if not reader.is_alive():
                    headers = {"Last-Event-ID": viewer.last_id} if viewer.last_id else None
                    call = runtime.invoke(function_url_event("GET", "/api/v2/stream", headers),
                                          timeout_s=LIFETIME_S + 60)
                    viewer.resumes += 1
                    reader = threading.Thread(target=viewer.read, args=(call,), daemon=True)
                    reader.start()

        stream_until(lambda: False, time.monotonic() + stream_s)
        stop_writing.set()
        writing.join(5)
        # The last writes: still resuming, a bounded wait (a resume at 0.07 vCPU takes seconds).
        stream_until(lambda: len(viewer.received) >= len(writer.written), time.monotonic() + 30)
        processes, cgroup_peak, kills = memory_figures(container.name)
        exited = container.exit_code()  # None: the runtime lived through the run (no OOM kill, no crash)
        call.close()
    finally:
        stop_writing.set()
        container.stop()
        runtime.stop()
    latencies = [viewer.received[item] - written for item, written in writer.written.items()
                 if item in viewer.received]
    return SizeResult(memory_mb or 0, init_started - began, init, cold_start, percentile(latencies, .5),
                      percentile(latencies, .95), len(latencies), len(writer.written), viewer.duplicates,
                      viewer.resumes, sum(processes.values()), cgroup_peak, kills, exited, processes)


def stack_size() -> tuple[str, int]:
    """The SSE function's (architecture, memory_mb) in the stack map and Terraform's default."""
    from devstack.stack import REPO_ROOT, load_stack

    variables = (REPO_ROOT / "infrastructure" / "terraform" / "variables.tf").read_text()
    block = variables.split('variable "lambda_architecture"', 1)[1].split("\n}", 1)[0]
    architecture = block.split("default", 1)[1].split('"')[1]
    return architecture, int(load_stack().function("sse_streaming").memory_mb)


def split(result: SizeResult) -> str:
    """'runtime 61 + extension 25; ' from the per-process high-water marks ('' when not recorded)."""
    ordered = sorted(result.processes.items(), key=lambda item: item[0] != "runtime")
    parts = [f"{name} {mb:.0f}" for name, mb in ordered]
    return f"{' + '.join(parts)}; " if parts else ""


def table(results: list[SizeResult]) -> str:
    """The sizing table (markdown): x86_64 measured, then arm64 priced only; the stack's size is marked."""
    lifetime = stack_lifetime_s()
    chosen = stack_size()
    lines = ["| arch | memory | vCPU | init / cold start to first byte | write -> event p50 / p95 | events delivered "
             "| resumes | peak RSS fn + ext (each; cgroup peak) | headroom | OOM kills | $ / viewer-month | stack |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        mark = "**chosen**" if chosen == ("x86_64", r.memory_mb) else ""
        over = f" (**init over {INIT_LIMIT_S:.0f} s**)" if r.init_s >= INIT_LIMIT_S else ""
        lines.append(f"| x86_64 | {r.memory_mb} MB | {lambda_cpus(r.memory_mb):.3f} "
                     f"| {r.init_s * 1000:,.0f} / {r.cold_start_s * 1000:,.0f} ms{over} "
                     f"| {r.p50_s * 1000:,.0f} / {r.p95_s * 1000:,.0f} ms | {r.delivered}/{r.written} "
                     f"| {r.resumes} | {r.peak_rss_mb:.0f} MB ({split(r)}cgroup {r.cgroup_peak_mb:.0f} MB) "
                     f"| {r.headroom:+.0%} "
                     f"| {r.oom_kills} | {r.cost:.2f} | {mark} |")
    for r in results:
        lines.append(f"| arm64 (not measured) | {r.memory_mb} MB | {lambda_cpus(r.memory_mb):.3f} | - | - | - | - | - "
                     f"| - | - | {viewer_month_cost(r.memory_mb, 'arm64', lifetime):.2f} | |")
    return "\n".join(lines)


def run(sizes: tuple[int, ...] = SIZES_MB, stream_s: float = STREAM_S) -> list[Row]:
    import boto3

    from devstack.aws.moto_server import MotoServer
    from devstack.aws.resources import create_resources
    from devstack.lambda_.container import ContainerImage
    from devstack.stack import load_stack
    from devstack.xray.daemon import XRayDaemon
    from devstack.xray.otlp_receiver import OtlpReceiver
    from lib.news.store import NewsTable
    from lib.tables import dynamodb

    image = ContainerImage.prepare(tag=IMAGE_TAG, install=True)
    print(f"[sizing] {image.how}; {stream_s:.0f} s of stream per size, lifetime {LIFETIME_S} s "
          f"(the stack's: {stack_lifetime_s():.0f} s)", flush=True)
    moto = MotoServer().start()
    os.environ["AWS_ENDPOINT_URL"] = moto.endpoint
    boto3.setup_default_session()
    resources = create_resources(load_stack())
    table_resource = boto3.resource("dynamodb").Table(resources.tables["news"])
    dynamodb.cache_clear()  # an earlier benchmark of this process may have made it for its own moto
    news = NewsTable(resources.tables["news"])
    sink = CountingSink()
    daemon = XRayDaemon(sink).start()  # type: ignore[arg-type]
    receiver = OtlpReceiver(sink).start()  # type: ignore[arg-type]
    results: list[SizeResult] = []
    try:
        # The reference: the same container without limits, so the machine's own load (2 shared cores)
        # is told apart from the size's CPU share.
        reference = measure(None, image, moto, resources, daemon, receiver, table_resource, news, min(stream_s, 30))
        print(f"[sizing] no limits (reference): {reference}", flush=True)
        for memory_mb in sizes:
            started = time.monotonic()
            results.append(measure(memory_mb, image, moto, resources, daemon, receiver, table_resource, news, stream_s))
            print(f"[sizing] {memory_mb} MB done in {time.monotonic() - started:.0f} s: {results[-1]}", flush=True)
    finally:
        receiver.stop()
        daemon.stop()
        moto.stop()
        image.close()
    print(f"\n{table(results)}\n", flush=True)
    load = " / ".join(f"{value:.1f}" for value in os.getloadavg())
    rows = [Row("7 sizing", f"x86_64, no limits (host's 2 shared cores, reference; load at the end {load}): init, "
                "cold start to first byte, write -> event p95, peak RSS fn + ext",
                f"{reference.init_s * 1000:.0f} ms / {reference.cold_start_s * 1000:.0f} ms / "
                f"{reference.p95_s * 1000:.0f} ms / {reference.peak_rss_mb:.0f} MB", "-", None)]
    for r in results:
        goals = r.goals()
        rows.append(Row("7 sizing", f"x86_64 {r.memory_mb} MB ({lambda_cpus(r.memory_mb):.3f} vCPU): $ / viewer-month, "
                        "write -> event p95, init, cold start to first byte, headroom over peak RSS, events lost / dup",
                        f"{r.cost:.2f} / {r.p95_s * 1000:.0f} ms / {r.init_s * 1000:.0f} ms / "
                        f"{r.cold_start_s * 1000:.0f} ms / {r.headroom:+.0%} / {r.written - r.delivered} / "
                        f"{r.duplicates}",
                        f"<= {GOAL_COST:.0f} / <= {GOAL_P95_S * 1000:.0f} ms / < {INIT_LIMIT_S * 1000:.0f} ms / "
                        f"- (ratio: 2 init) / >= +{GOAL_HEADROOM:.0%} / 0 / 0",
                        all(goals.values())))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES_MB)))
    parser.add_argument("--stream-s", type=float, default=STREAM_S)
    args = parser.parse_args()
    rows = run(tuple(int(size) for size in args.sizes.split(",")), args.stream_s)
    for row in rows:
        print(" | ".join(row.cells()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
