"""Benchmark 2: cold init, timed from process spawn until the handler is ready, median of repetitions.

- SSE Lambda: ours (import the handler module, build the one TracerProvider: lib.tracing.otel)
  against the same handler started the way the ADOT Python layer starts it, which FR-046/FR-076
  rule out: the layer's `/opt/python` (benchmarks/adot-layer-requirements.txt, built once with
  `pip --target` into .bench/) first on PYTHONPATH, `opentelemetry-instrument` run by the
  function's interpreter, the configuration the layer's `otel-instrument` wrapper sets (OTLP/HTTP
  exporter, X-Ray propagator and id generator, Lambda resource detector, `ORIG_HANDLER`). Both run
  in an interpreter whose site-packages holds exactly the image's pinned distributions
  (docker/sse/requirements.txt), so each instrumentation loads only if the image has its library.
- Each batch Lambda: its handler module imported with the Tracer enabled vs
  `POWERTOOLS_TRACE_DISABLED=true`.

A bare interpreter start (`python -c pass` with the same site-packages) is measured too: Lambda's
INIT phase includes it, so both figures are shown with and without it. Repetitions alternate the
variants so background load on this shared machine hits them alike.

The SSE cold-start goal (ours to the first byte <= 0.5 x the layer's start) is also measured at
Lambda's CPU share for a few memory sizes (the stack's among them): both commands run in a cgroup v1
`cpu` group whose CFS quota is that share of one CPU, so both sides get the same CPU. A machine
without a writable cgroup v1 `cpu` controller (CI, most containers) gets rows saying so.

    python benchmarks/run.py --only init
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

from benchmarks.bench_sizing import lambda_cpus, stack_size
from benchmarks.common import ROOT, Row, median
from devstack.lambda_.events import function_url_event
from devstack.lambda_.invocation import lambda_environment
from devstack.stack import SRC_ROOT, FunctionSpec, load_stack, physical_name
from tests.fixtures.packages import image_pins, site_of

REPETITIONS = 5
TARGET_SSE_RATIO = 0.5
ACCOUNT = "123456789012"

# Memory sizes whose CPU share the SSE cold-start goal is measured at (the stack's size is added).
CPU_SHARE_SIZES_MB = (128, 1024)
# cgroup v1 CFS bandwidth control: a group may run `quota` us of CPU per `period` us
# (https://kernel.org/doc/Documentation/scheduler/sched-bwc.rst); 100 ms is the kernel's default
# period and the one `docker run --cpus` sets, as bench_sizing's containers are sized.
CPU_CGROUP_ROOT = Path("/sys/fs/cgroup/cpu")
CFS_PERIOD_US = 100_000
CGROUP_REMOVE_TRIES = 50  # x 0.1 s: the group empties once its last process is reaped

ADOT_LAYER_REQUIREMENTS = Path(__file__).with_name("adot-layer-requirements.txt")
BENCH_CACHE = ROOT / ".bench"

# What the ADOT Python layer's `otel-instrument` wrapper configures.
AUTO_INSTRUMENTATION_ENV = {
    "OTEL_TRACES_EXPORTER": "otlp",
    "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://localhost:4318/v1/traces",
    "OTEL_METRICS_EXPORTER": "none",
    "OTEL_LOGS_EXPORTER": "none",
    "OTEL_PROPAGATORS": "xray-lambda",
    "OTEL_PYTHON_ID_GENERATOR": "xray",
    "OTEL_RESOURCE_DETECTORS": "aws_lambda",
}

DRIVER = """
import importlib, sys
sys.path.insert(0, {src!r})
importlib.import_module({module!r})
if {build_provider!r}:
    from lib.tracing.otel import tracer_provider
    tracer_provider()
if {check_auto!r}:
    from opentelemetry.instrumentation.aws_lambda import AwsLambdaInstrumentor
    from opentelemetry.instrumentation.botocore import BotocoreInstrumentor
    for instrumentor in (AwsLambdaInstrumentor(), BotocoreInstrumentor()):
        assert instrumentor.is_instrumented_by_opentelemetry, f"{{instrumentor}}: auto-instrumentation did not run"
print("ready", flush=True)
"""


# Ours to the first byte of a stream: the handler invoked as the bootstrap invokes it, and the first
# frame of the body produced (it goes out before the stream's first DynamoDB read).
FIRST_BYTE = """
import importlib, os, sys
sys.path.insert(0, {src!r})
from lib.tracing.otel import tracer_provider
tracer_provider()
handler = importlib.import_module({module!r}).lambda_handler
class Context:
    aws_request_id = "bench-cold-start"
    function_name = "sse"
    memory_limit_in_mb = 1024
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:sse"
    def get_remaining_time_in_millis(self):
        return 60000
response = handler({event}, Context())
first = next(iter(response.body))
assert first.startswith(b"retry:"), first
print("ready", flush=True)
os._exit(0)  # the stream itself is not measured here
"""
TRACE_HEADER = "Root=1-6752a1b0-0123456789abcdef01234567;Parent=53995c3f42cd8ad8;Sampled=1"
IMPORT_LINE = re.compile(r"^import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)$")
# How `-X importtime` self times are grouped: the top-level package, ours by name.
IMPORT_GROUPS = {"lambdas": "our function", "lib": "our lib (tracing, metrics, model)",
                 "aws_xray_sdk": "X-Ray SDK (Powertools Tracer)", "aws_lambda_powertools": "Powertools",
                 "opentelemetry": "OpenTelemetry SDK + OTLP exporter", "google": "protobuf",
                 "botocore": "botocore", "urllib3": "urllib3 + requests", "requests": "urllib3 + requests",
                 "charset_normalizer": "urllib3 + requests", "idna": "urllib3 + requests",
                 "certifi": "urllib3 + requests", "wrapt": "wrapt", "jmespath": "botocore", "dateutil": "botocore"}

READY = "print('ready', flush=True)"
TRACING_ONLY = f"""
import sys
sys.path.insert(0, {str(SRC_ROOT)!r})
from lib.tracing.otel import tracer_provider
tracer_provider()
{READY}
"""


def _resolved_env(function: FunctionSpec) -> dict[str, str]:
    """The function's env with references resolved to local physical names (nothing is created)."""
    resolved = {}
    for name, value in function.env.items():
        kind, sep, key = value.partition(":")
        if sep and kind == "topic":
            resolved[name] = f"arn:aws:sns:us-east-1:{ACCOUNT}:{physical_name(key)}"
        elif sep and kind in ("table", "queue", "secret"):
            resolved[name] = physical_name(key)
        else:
            resolved[name] = value.replace("${env}", "local")
    return resolved


def _environment(function: FunctionSpec, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("OTEL_", "POWERTOOLS_TRACE"))}
    env.update({"AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing",
                "AWS_SECRET_ACCESS_KEY": "testing", "AWS_SESSION_TOKEN": "testing",
                "AWS_ENDPOINT_URL": "http://127.0.0.1:9"})
    env.update(lambda_environment(function, _resolved_env(function), "127.0.0.1:2000"))
    env["OTEL_SERVICE_NAME"] = function.service_name  # FR-071, for every variant alike
    env.update(extra or {})
    return env


class CpuShareUnavailable(RuntimeError):
    """No writable cgroup v1 `cpu` controller here; the message says why."""


@contextmanager
def lambda_cpu_share(memory_mb: int) -> Iterator[Path]:
    """A cgroup v1 `cpu` group allowed Lambda's CPU share at `memory_mb` (bench_sizing.lambda_cpus),
    removed on exit; processes join it through `_join_cgroup`.

    >>> with lambda_cpu_share(192) as group:  # doctest: +SKIP
    ...     int((group / "cpu.cfs_quota_us").read_text())
    10854
    """
    group = CPU_CGROUP_ROOT / f"bench-init-{os.getpid()}-{memory_mb}mb"
    try:
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(CFS_PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(round(CFS_PERIOD_US * lambda_cpus(memory_mb))))
    except OSError as error:
        _remove_cgroup(group)
        raise CpuShareUnavailable(f"no writable cgroup v1 cpu controller at {CPU_CGROUP_ROOT} "
                                  f"({error.strerror or error})") from error
    try:
        yield group
    finally:
        _remove_cgroup(group)


def _remove_cgroup(group: Path) -> None:
    """rmdir `group`, waiting (bounded) for its last process to be reaped; a group left is reported."""
    for _ in range(CGROUP_REMOVE_TRIES):
        try:
            group.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:  # EBUSY: a process not yet gone
            time.sleep(0.1)
    print(f"  warning: could not remove {group} (processes still in it); rmdir it by hand", file=sys.stderr)


def _join_cgroup(group: Path) -> None:
    """Run in the child between fork and exec: it and whatever it execs count against the group's quota."""
    (group / "cgroup.procs").write_text(str(os.getpid()))


def _spawn_to_ready(command: list[str], env: dict[str, str], cgroup: Path | None = None) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=partial(_join_cgroup, cgroup) if cgroup else None)
    assert process.stdout is not None
    line = process.stdout.readline()
    while line and line.strip() != "ready":  # the function's own log lines (its Logger writes to stdout)
        line = process.stdout.readline()
    elapsed = time.perf_counter() - started
    _, errors = process.communicate(timeout=60)
    if line.strip() != "ready" or process.returncode != 0:
        raise RuntimeError(f"{command[0]} did not get ready (exit {process.returncode}): {errors[-2000:]}")
    return elapsed * 1000


def _driver(function: FunctionSpec, build_provider: bool = False, check_auto: bool = False) -> str:
    module = function.handler.rpartition(".")[0]
    return DRIVER.format(src=str(SRC_ROOT), module=module, build_provider=build_provider, check_auto=check_auto)


def import_shares(command: list[str], env: dict[str, str]) -> tuple[float, list[tuple[str, float]]]:
    """`python -X importtime` of `command`: total import time (ms) and each group's share of it."""
    result = subprocess.run([command[0], "-X", "importtime", *command[1:]], env=env, cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=True)
    groups: dict[str, float] = {}
    for line in result.stderr.splitlines():
        match = IMPORT_LINE.match(line)
        if match is None:
            continue
        top = match[4].split(".")[0]
        group = IMPORT_GROUPS.get(top, "standard library" if top in sys.stdlib_module_names else f"other ({top})")
        groups[group] = groups.get(group, 0.0) + int(match[1]) / 1000
    total = sum(groups.values())
    return total, sorted(((name, ms) for name, ms in groups.items()), key=lambda pair: -pair[1])


def _timed(variants: dict[str, tuple[list[str], dict[str, str]]], cgroup: Path | None = None) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repetition in range(REPETITIONS):
        names = list(variants) if repetition % 2 == 0 else list(reversed(variants))
        for name in names:
            command, env = variants[name]
            times[name].append(_spawn_to_ready(command, env, cgroup))
    return {name: median(values) for name, values in times.items()}


def adot_layer() -> Path:
    """The ADOT Python layer's `/opt/python`, installed once per version of its requirements file."""
    pins = ADOT_LAYER_REQUIREMENTS.read_bytes()
    layer = BENCH_CACHE / f"adot-layer-{hashlib.sha256(pins).hexdigest()[:12]}" / "python"
    if not (layer / "bin" / "opentelemetry-instrument").is_file():
        staging = layer.with_name("python.partial")
        shutil.rmtree(staging, ignore_errors=True)
        print(f"  installing the ADOT layer baseline into {layer} ...", flush=True)
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", str(staging), "-r", str(ADOT_LAYER_REQUIREMENTS)], check=True)
        staging.rename(layer)
    return layer


def image_interpreter(scratch: Path) -> Path:
    """A Python whose site-packages holds exactly the SSE image's pinned distributions (symlinked)."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(scratch)], check=True)
    site_packages = next((scratch / "lib").glob("python3*/site-packages"))
    site_of(image_pins(), site_packages)
    return scratch / "bin" / "python"


def sse_rows() -> list[Row]:
    function = load_stack().function("sse_streaming")
    layer = adot_layer()
    with tempfile.TemporaryDirectory(prefix="bench-init-") as scratch:
        python = str(image_interpreter(Path(scratch)))
        instrument = [python, str(layer / "bin" / "opentelemetry-instrument"), python]
        env = _environment(function, {"PYTHONPATH": str(SRC_ROOT)})
        # The wrapper puts the layer first; ORIG_HANDLER is what its Lambda instrumentor wraps (and imports).
        layer_env = {**AUTO_INSTRUMENTATION_ENV, "PYTHONPATH": f"{layer}{os.pathsep}{SRC_ROOT}"}
        auto_env = _environment(function, {**layer_env, "ORIG_HANDLER": function.handler})
        layer_only_env = {key: value for key, value in _environment(function, layer_env).items() if key != "_HANDLER"}
        event = repr(function_url_event("GET", "/api/v2/stream", {}))
        first_byte = FIRST_BYTE.format(src=str(SRC_ROOT), module=function.handler.rpartition(".")[0], event=event)
        first_byte_env = {**env, "_X_AMZN_TRACE_ID": TRACE_HEADER}
        variants = {
            "bare": ([python, "-c", READY], env),
            "ours": ([python, "-c", _driver(function, build_provider=True)], env),
            "ours_first_byte": ([python, "-c", first_byte], first_byte_env),
            "auto": ([*instrument, "-c", _driver(function, check_auto=True)], auto_env),
            # Tracing's own share: our provider module and provider alone, vs the layer's start alone
            # (no handler to wrap: its instrumentations import only the libraries they patch).
            "ours_tracing": ([python, "-c", TRACING_ONLY], env),
            "auto_tracing": ([*instrument, "-c", READY], layer_only_env),
        }
        medians = _timed(variants)
        imports_total, shares = import_shares(*variants["ours_first_byte"])
        at_cpu_share = cpu_share_rows(variants["ours_first_byte"], variants["auto"])
    bare, ours, auto = medians["bare"], medians["ours"], medians["auto"]
    ours_tracing, auto_tracing = medians["ours_tracing"] - bare, medians["auto_tracing"] - bare
    ratio, net_ratio = ours / auto, (ours - bare) / (auto - bare)
    first = medians["ours_first_byte"]
    share_text = ", ".join(f"{name} {ms:.0f} ms ({ms / imports_total:.0%})" for name, ms in shares[:9])
    return [
        Row("2 init", "sse_streaming: spawn to the first byte of a stream (handler invoked, first frame out), ours "
            f"vs the ADOT layer's start to ready (median of {REPETITIONS})", f"{first:.0f} vs {auto:.0f} ms = "
            f"x{first / auto:.2f}", f"ratio <= {TARGET_SSE_RATIO}", first / auto <= TARGET_SSE_RATIO),
        Row("2 init", f"sse_streaming: imports to the first byte, -X importtime self times summed ({imports_total:.0f} "
            "ms, one run), by package", share_text, "-", None),
        Row("2 init", f"sse_streaming: spawn to ready, ours vs the ADOT layer's auto-instrumentation (median of "
            f"{REPETITIONS})", f"{ours:.0f} vs {auto:.0f} ms = x{ratio:.2f}", f"ratio <= {TARGET_SSE_RATIO}",
            ratio <= TARGET_SSE_RATIO),
        Row("2 init", f"sse_streaming: the same without the bare interpreter start ({bare:.0f} ms)",
            f"{ours - bare:.0f} vs {auto - bare:.0f} ms = x{net_ratio:.2f}", "-", None),
        Row("2 init", "tracing alone: lib.tracing.otel + provider vs the layer's instrumented start "
            "(its instrumentations import botocore, urllib3, requests)",
            f"{ours_tracing:.0f} vs {auto_tracing:.0f} ms = x{ours_tracing / auto_tracing:.2f}", "-", None),
        *at_cpu_share,
    ]


def cpu_share_rows(ours_first_byte: tuple[list[str], dict[str, str]],
                   adot_start: tuple[list[str], dict[str, str]]) -> list[Row]:
    """The cold-start ratio with both commands capped at Lambda's CPU share for each size; the goal is
    judged at the stack's size (issue 23), the other sizes are shown beside it."""
    _, stack_mb = stack_size()
    rows = []
    for memory_mb in sorted({*CPU_SHARE_SIZES_MB, stack_mb}):
        chosen = memory_mb == stack_mb
        figure = (f"sse_streaming at {memory_mb} MB's CPU share ({lambda_cpus(memory_mb):.3f} vCPU, cgroup CFS quota"
                  f"{'; the stack size' if chosen else ''}): spawn to first byte, ours vs the ADOT layer's start "
                  f"(median of {REPETITIONS})")
        target = f"ratio <= {TARGET_SSE_RATIO}" if chosen else "-"
        try:
            with lambda_cpu_share(memory_mb) as group:
                medians = _timed({"ours": ours_first_byte, "adot": adot_start}, cgroup=group)
        except CpuShareUnavailable as why:
            rows.append(Row("2 init", figure, f"not measured: {why}", target, None))
            continue
        ratio = medians["ours"] / medians["adot"]
        rows.append(Row("2 init", figure, f"{medians['ours']:,.0f} vs {medians['adot']:,.0f} ms = x{ratio:.2f}",
                        target, ratio <= TARGET_SSE_RATIO if chosen else None))
    return rows


def batch_rows() -> list[Row]:
    rows = []
    python = sys.executable
    for key, function in load_stack().functions.items():
        if function.package != "zip":
            continue
        variants = {
            "traced": ([python, "-c", _driver(function)], _environment(function)),
            "disabled": ([python, "-c", _driver(function)],
                         _environment(function, {"POWERTOOLS_TRACE_DISABLED": "true"})),
        }
        medians = _timed(variants)
        traced, disabled = medians["traced"], medians["disabled"]
        rows.append(Row("2 init", f"{key}: spawn to handler imported, traced vs disabled (median of {REPETITIONS})",
                        f"{traced:.0f} vs {disabled:.0f} ms (+{traced - disabled:.0f} ms)", "-", None))
    return rows


def run() -> list[Row]:
    return sse_rows() + batch_rows()
