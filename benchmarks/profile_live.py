#!/usr/bin/env python3
"""Where the CPU goes when many viewers stream (issue 19): bench_live's scenario under py-spy.

Each scenario ("ours", one environment per viewer, as `bench_live` runs it) is sampled by one
`py-spy record --subprocesses` per phase, attached to this process: it samples this process (the
client, the Runtime APIs, moto, the trace receivers: one interpreter) and every environment's
`bootstrap` process. py-spy leaves out threads the OS shows sleeping, so a sample is a thread
running or waiting for a core; the phase's CPU seconds (`bench_live.CpuMeter`, from /proc) are
split in the proportions of those samples:

- environments, by layer: the innermost frame outside the standard library names the package
  (botocore, tracing, the runtime, our code); a stack of standard-library frames only is
  "interpreter";
- environments, by activity: marker read, poll (index query or window hit), event written (its
  frame built and posted by the runtime), span export, the handler phase of each invocation;
  divided by what the phase counted, the CPU of one marker read, one poll, one event;
- this process, by component.

The raw stacks (`--format raw`, the collapsed-stack input of flamegraph tools) are kept under
`--out`. py-spy's own CPU is measured and printed: it shares the cores it measures.

    python benchmarks/profile_live.py [--viewers 1,100] [--rate 20] [--out .devstack/profile-live]
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import sysconfig
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import bench_live
from benchmarks.common import ROOT, Row

STDLIB = sysconfig.get_paths()["stdlib"]
# The package of a file: the first of these markers its path holds.
LAYERS = (
    ("botocore", ("/botocore/", "/urllib3/", "/dateutil/", "/jmespath/", "/s3transfer/", "/boto3/")),
    ("tracing", ("/opentelemetry/", "/google/protobuf/", "/requests/", "/aws_xray_sdk/", "/lib/tracing/",
                 "/aws_lambda_powertools/tracing/", "/wrapt/")),
    ("runtime", ("/docker/sse/bootstrap",)),
    ("our code", ("/src/lambdas/", "/src/lib/")),
)
# An environment's activity: the first of these functions (name, file) its stack holds, leaf side last.
ACTIVITIES = (
    ("marker read", (("read_marker", "sse_streaming/feed.py"),)),
    ("poll", (("_poll", "sse_streaming/stream.py"),)),
    ("metrics put", (("_publish_metrics", "sse_streaming/stream.py"),)),
    # the processor's worker thread, and the flush each poll cycle (`*`: any function of that file)
    ("span export", (("flush", "lib/tracing/otel.py"), ("*", "opentelemetry/sdk/_shared_internal/"),
                     ("*", "opentelemetry/exporter/"))),
    ("event", (("_dispatch", "sse_streaming/stream.py"), ("_control", "sse_streaming/stream.py"),
               ("_dispatch_item", "sse_streaming/stream.py"), ("stream", "docker/sse/bootstrap"))),
    ("handler phase", (("lambda_handler", "sse_streaming/handler.py"), ("next_invocation", "docker/sse/bootstrap"),
                       ("serve_one", "docker/sse/bootstrap"))),
)
# This process's components: the first whose marker a frame of the stack holds, root side first.
COMPONENTS = (
    ("client", ("Viewer.run",)),
    ("writer", ("Writer.",)),
    ("trace receivers", ("/devstack/xray/", "Tally.")),
    ("moto", ("/moto/", "/werkzeug/")),
    ("deadline watchdogs", ("_watch_deadlines",)),
    ("Runtime APIs", ("/devstack/lambda_/",)),
    ("HTTP servers' accept loops and request parsing", ("socketserver.py",)),
)


@dataclass
class Samples:
    """Active-thread samples of one phase, sorted by process kind and category."""

    layers: Counter[str] = field(default_factory=Counter)
    activities: Counter[str] = field(default_factory=Counter)
    components: Counter[str] = field(default_factory=Counter)
    environment_total: int = 0
    benchmark_total: int = 0


def _frame_file(frame: str) -> str:
    """`name (path:line)` -> path."""
    return frame.rsplit("(", 1)[-1].rsplit(":", 1)[0]


def layer(frames: list[str]) -> str:
    """The package of the innermost frame outside the standard library ("interpreter" if none).

    Example:
        >>> layer(["main (/x/docker/sse/bootstrap:1)", "get (/v/lib/python3.13/site-packages/botocore/a.py:2)",
        ...        f"send ({STDLIB}/socket.py:3)", "get (<frozen _collections_abc>:813)"])
        'botocore'
    """
    for frame in reversed(frames):
        path = _frame_file(frame)
        if path.startswith("<") or (path.startswith(STDLIB) and "site-packages" not in path):
            continue  # the standard library, frozen modules and `<string>` code (dataclasses, namedtuples)
        return next((name for name, markers in LAYERS if any(marker in path for marker in markers)), "other packages")
    return "interpreter"


def activity(frames: list[str]) -> str:
    """What an environment's thread was doing: the first ACTIVITIES entry its stack holds ("other")."""
    for name, functions in ACTIVITIES:
        for frame in frames:
            function = frame.split(" (", 1)[0].rsplit(".", 1)[-1]
            if any(wanted in (function, "*") and where in _frame_file(frame) for wanted, where in functions):
                return name
    return "other"


def component(frames: list[str]) -> str:
    for name, markers in COMPONENTS:
        if any(marker in frame for frame in frames for marker in markers):
            return name
    return "other"


def read_samples(raw: Path, benchmark_pid: int) -> Samples:
    """py-spy's raw output: one line per distinct stack, `process A;process B;frame;...;frame count`."""
    samples = Samples()
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        parts = stack.split(";")
        processes = [part for part in parts if part.startswith("process ")]
        frames = [part for part in parts if not part.startswith("process ")]
        count = int(count_text)
        if "bootstrap" in processes[-1]:
            samples.environment_total += count
            samples.layers[layer(frames)] += count
            samples.activities[activity(frames)] += count
        elif processes[-1].startswith(f"process {benchmark_pid}:"):
            samples.benchmark_total += count
            samples.components[component(frames)] += count
    return samples


@dataclass
class PhaseProfile:
    samples: Samples
    pyspy_cpu_s: float
    raw: Path


class PySpyPhases:
    """A `bench_live.PhaseObserver`: one py-spy per phase on this process and its children."""

    def __init__(self, out: Path, rate: int, label: str):
        self.out, self.rate, self.label = out, rate, label
        self.phases: dict[str, PhaseProfile] = {}

    @contextmanager
    def __call__(self, phase: str, pids: list[int]) -> Iterator[None]:
        raw = self.out / f"{self.label}-{phase.replace(' ', '-')}.txt"
        command = [str(Path(sys.executable).with_name("py-spy")), "record", "--pid", str(os.getpid()),
                   "--subprocesses", "--rate", str(self.rate), "--format", "raw", "--full-filenames",
                   "--nonblocking", "--output", str(raw)]
        spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(2.0)  # py-spy finds the children and starts sampling before the phase is measured
        try:
            yield
        finally:
            spy_cpu = bench_live.process_cpu_s(spy.pid)
            spy.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            _, errors = spy.communicate(timeout=120)
            if spy.returncode != 0 or not raw.exists():
                raise RuntimeError(f"py-spy failed ({spy.returncode}): {errors.decode()[-500:]}")
        self.phases[phase] = PhaseProfile(read_samples(raw, os.getpid()), spy_cpu, raw)


def _shares(counter: Counter[str], total: int) -> str:
    return ", ".join(f"{name} {100 * count / total:.0f}%" for name, count in counter.most_common()) if total else "-"


def _cpu_per(samples: Samples, activity_name: str, cpu_s: float, done: int) -> str:
    """The environments' CPU of one activity, per time it was done."""
    if not done or not samples.environment_total:
        return "-"
    return f"{1000 * cpu_s * samples.activities[activity_name] / samples.environment_total / done:.1f} ms"


def profile_rows(outcome: bench_live.Outcome, profiler: PySpyPhases) -> list[Row]:
    label = f"ours, {outcome.viewers} viewer{'s' if outcome.viewers > 1 else ''}"
    rows = []
    for phase, counts in (("no news", outcome.idle), ("news", outcome.live)):
        profile = profiler.phases[phase]
        samples, cpu = profile.samples, counts.cpu
        environments, benchmark, machine = cpu.per_wall_s()
        head = f"{label}, {phase} ({cpu.wall_s:.0f} s, py-spy {profiler.rate} Hz)"
        rows.append(Row(
            "5 profile", f"{head}: environments' CPU ({cpu.environments_s:.1f} CPU-s, {environments:.2f} per wall-s; "
            f"{samples.environment_total} active samples) by layer (innermost frame outside the standard library)",
            _shares(samples.layers, samples.environment_total), "-", None))

        marker_reads, queries = counts.calls["DynamoDB.GetItem"], counts.calls["DynamoDB.Query"]
        rows.append(Row(
            "5 profile", f"{head}: environments' CPU by activity; CPU per marker read ({marker_reads} done) / per "
            f"query ({queries}) / per event written ({counts.events})",
            f"{_shares(samples.activities, samples.environment_total)}; "
            + " / ".join(_cpu_per(samples, name, cpu.environments_s, done) for name, done in
                         (("marker read", marker_reads), ("poll", queries), ("event", counts.events))),
            "-", None))
        ours = cpu.environments_s + cpu.benchmark_s
        rows.append(Row(
            "5 profile", f"{head}: this benchmark's process ({cpu.benchmark_s:.1f} CPU-s, {benchmark:.2f} per wall-s, "
            f"{100 * cpu.benchmark_s / ours:.0f}% of the run's CPU; {samples.benchmark_total} samples) by component",
            _shares(samples.components, samples.benchmark_total), "-", None))
        rows.append(Row(
            "5 profile", f"{head}: CPU-s per wall-s of environments + this process / py-spy / the whole machine "
            f"({os.cpu_count()} cores, anyone's)",
            f"{ours / cpu.wall_s:.2f} / {profile.pyspy_cpu_s / (cpu.wall_s + 2):.2f} / {machine:.2f}", "-", None))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--viewers", default="1,100", help="the scenarios, comma-separated viewer counts")
    parser.add_argument("--rate", type=int, help="py-spy samples per second per thread (default: 2,000 / viewers, "
                        "10 to 100: the sampler shares the cores it measures)")
    parser.add_argument("--out", type=Path, default=ROOT / ".devstack" / "profile-live")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    outcomes: dict[tuple[str, int], bench_live.Outcome] = {}
    with bench_live.live_stack() as live:
        marker_s, settle_ms = live.env["SSE_MARKER_INTERVAL_S"], live.env["SSE_INDEX_SETTLE_MS"]
        for viewers in (int(value) for value in args.viewers.split(",")):
            print(f"  ours, {viewers} viewers, under py-spy ...", flush=True)
            rate = args.rate or max(10, min(100, 2000 // viewers))
            profiler = PySpyPhases(args.out, rate, f"ours-{viewers}")
            outcome = bench_live.scenario("ours", viewers, live.designs["ours"], live.parts, observe=profiler)
            outcomes["ours", viewers] = outcome
            rows += (bench_live.latency_rows(outcome, marker_s, settle_ms)
                     + bench_live.cpu_rows(outcome, float(marker_s)) + profile_rows(outcome, profiler))
            for row in rows[-12:]:
                print(" | ".join(row.cells()[1:3]), flush=True)
    rows += bench_live.demand_rows(outcomes, float(marker_s), max(viewers for _, viewers in outcomes))
    from benchmarks.run import table

    print(f"\nload average {' / '.join(f'{value:.1f}' for value in os.getloadavg())}; raw stacks in {args.out}\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
