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

    python benchmarks/run.py --only init
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import ROOT, Row, median
from devstack.lambda_.invocation import lambda_environment
from devstack.stack import SRC_ROOT, FunctionSpec, load_stack, physical_name
from tests.fixtures.packages import image_pins, site_of

REPETITIONS = 9
TARGET_SSE_RATIO = 0.5
ACCOUNT = "123456789012"

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


def _spawn_to_ready(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    line = process.stdout.readline()
    elapsed = time.perf_counter() - started
    _, errors = process.communicate(timeout=60)
    if line.strip() != "ready" or process.returncode != 0:
        raise RuntimeError(f"{command[0]} did not get ready (exit {process.returncode}): {errors[-2000:]}")
    return elapsed * 1000


def _driver(function: FunctionSpec, build_provider: bool = False, check_auto: bool = False) -> str:
    module = function.handler.rpartition(".")[0]
    return DRIVER.format(src=str(SRC_ROOT), module=module, build_provider=build_provider, check_auto=check_auto)


def _timed(variants: dict[str, tuple[list[str], dict[str, str]]]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in variants}
    for repetition in range(REPETITIONS):
        names = list(variants) if repetition % 2 == 0 else list(reversed(variants))
        for name in names:
            command, env = variants[name]
            times[name].append(_spawn_to_ready(command, env))
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
        medians = _timed({
            "bare": ([python, "-c", READY], env),
            "ours": ([python, "-c", _driver(function, build_provider=True)], env),
            "auto": ([*instrument, "-c", _driver(function, check_auto=True)], auto_env),
            # Tracing's own share: our provider module and provider alone, vs the layer's start alone
            # (no handler to wrap: its instrumentations import only the libraries they patch).
            "ours_tracing": ([python, "-c", TRACING_ONLY], env),
            "auto_tracing": ([*instrument, "-c", READY], layer_only_env),
        })
    bare, ours, auto = medians["bare"], medians["ours"], medians["auto"]
    ours_tracing, auto_tracing = medians["ours_tracing"] - bare, medians["auto_tracing"] - bare
    ratio, net_ratio = ours / auto, (ours - bare) / (auto - bare)
    return [
        Row("2 init", f"sse_streaming: spawn to ready, ours vs the ADOT layer's auto-instrumentation (median of "
            f"{REPETITIONS})", f"{ours:.0f} vs {auto:.0f} ms = x{ratio:.2f}", f"ratio <= {TARGET_SSE_RATIO}",
            ratio <= TARGET_SSE_RATIO),
        Row("2 init", f"sse_streaming: the same without the bare interpreter start ({bare:.0f} ms)",
            f"{ours - bare:.0f} vs {auto - bare:.0f} ms = x{net_ratio:.2f}", "-", None),
        Row("2 init", "tracing alone: lib.tracing.otel + provider vs the layer's instrumented start "
            "(its instrumentations import botocore, urllib3, requests)",
            f"{ours_tracing:.0f} vs {auto_tracing:.0f} ms = x{ours_tracing / auto_tracing:.2f}", "-", None),
    ]


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
