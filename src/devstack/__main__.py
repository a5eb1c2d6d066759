"""`python -m devstack up | demo | traces`: the local stack, its scripted demo, and its traces.

    up       run the whole stack until Ctrl-C (UI and API on http://127.0.0.1:8000)
    demo     bring the stack up, drive the scripted scenario, print the report; exit 1 if a step failed
    traces   trace trees of the running stack, read back through its X-Ray API

Example:
    $ PYTHONPATH=src python -m devstack demo --faults
    $ PYTHONPATH=src python -m devstack traces --trace-id 1-6760f3a1-0a1b2c3d4e5f60718293a4b5 --json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import boto3

from devstack.aws.moto_server import AWS_ENV, REGION
from devstack.console import Console
from devstack.emulator import (
    DEFAULT_SCHEDULES_S,
    SSE_RUNTIMES,
    Emulator,
    EmulatorOptions,
    EmulatorStartError,
    running_emulator,
)
from devstack.loopback import PortInUseError
from devstack.stack import load_stack
from devstack.xray.pipeline import devstack_dir
from devstack.xray.trace_reader import read_traces, recent_trace_ids, render


def _schedule(value: str) -> tuple[str, float]:
    """`ingestion=30` → ("ingestion", 30.0); `=0` turns a schedule off."""
    key, sep, seconds = value.partition("=")
    if not sep or key not in DEFAULT_SCHEDULES_S:
        raise argparse.ArgumentTypeError(f"want FUNCTION=SECONDS with FUNCTION one of {sorted(DEFAULT_SCHEDULES_S)}")
    try:
        return key, float(seconds)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"{seconds!r} is not a number of seconds") from error


def _function_env(value: str) -> tuple[str, str, str]:
    """`sse_streaming:SSE_STREAM_LIFETIME_S=20` → ("sse_streaming", "SSE_STREAM_LIFETIME_S", "20")."""
    key, sep, assignment = value.partition(":")
    name, equals, setting = assignment.partition("=")
    functions = sorted(load_stack().functions)
    if not sep or not equals or not name or key not in functions:
        raise argparse.ArgumentTypeError(f"want FUNCTION:NAME=VALUE with FUNCTION one of {functions}")
    return key, name, setting


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    def stack_options(command: argparse.ArgumentParser, port: int) -> None:
        command.add_argument("--host", default="127.0.0.1")
        command.add_argument("--port", type=int, default=port, help=f"gateway port (default {port}; 0: a free one)")
        command.add_argument("--dir", type=Path, default=None,
                             help="state directory (default $DEVSTACK_DIR or .devstack)")
        command.add_argument("--sse-runtime", choices=SSE_RUNTIMES, default="auto",
                             help="the SSE function as its container image (needs a docker engine), as a "
                                  "process, or auto: the container when an engine can run (default auto)")

    up = commands.add_parser("up", help="run the local stack until Ctrl-C")
    stack_options(up, 8000)
    up.add_argument("--schedule", action="append", default=[], type=_schedule, metavar="FUNCTION=SECONDS",
                    help="EventBridge schedule interval (defaults: ingestion=60 metrics=60 canary=300; 0 = off)")
    up.add_argument("--feed-interval", type=float, default=20.0,
                    help="seconds between new headlines at the fake news sources (0: none)")
    up.add_argument("--env", action="append", default=[], type=_function_env, metavar="FUNCTION:NAME=VALUE",
                    help="set one of a function's environment variables over the stack map's (repeatable)")

    demo = commands.add_parser("demo", help="the scripted scenario with its report")
    stack_options(demo, 0)
    demo.add_argument("--faults", action="store_true", help="also inject each of the seven silent failure paths once")
    demo.add_argument("--hold", action="store_true",
                      help="keep the stack up after the report (until Ctrl-C), so its trace view links open")

    traces = commands.add_parser("traces", help="trace trees of the running stack")
    traces.add_argument("--trace-id", action="append", default=[], help="this trace only (repeatable)")
    traces.add_argument("--json", action="store_true", help="the documents as JSON, one trace per line")
    traces.add_argument("--limit", type=int, default=10, help="the N most recent traces (default 10)")
    traces.add_argument("--dir", type=Path, default=None)
    return parser


def _wait_for_interrupt() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, handle)
    signal.signal(signal.SIGTERM, handle)
    while not stop.wait(1.0):
        pass


def _grouped(assignments: Sequence[tuple[str, str, str]]) -> dict[str, dict[str, str]]:
    grouped: dict[str, dict[str, str]] = {}
    for key, name, value in assignments:
        grouped.setdefault(key, {})[name] = value
    return grouped


def cmd_up(args: argparse.Namespace) -> int:
    console = Console()
    options = EmulatorOptions(host=args.host, port=args.port, directory=args.dir or devstack_dir(),
                           schedules_s={**DEFAULT_SCHEDULES_S, **dict(args.schedule)},
                           feed_interval_s=args.feed_interval, sse_runtime=args.sse_runtime,
                           env_overrides=_grouped(args.env))
    running = running_emulator(options.directory)
    if running is not None:
        console.line(f"error: a local stack is already running from {options.directory} (pid {running['pid']}, "
                     f"{running['gateway']}); stop it first, or use another --dir")
        return 2
    console.line("starting the local stack ...")
    stack = Emulator(options, console)
    try:
        stack.start()
    except (PortInUseError, EmulatorStartError) as error:
        console.line(f"error: {error}")
        return 2
    try:
        console.line(banner(stack))
        _wait_for_interrupt()
        console.line("stopping ...")
    finally:
        stack.stop()
    console.line("stopped")
    return 0


def banner(stack: Emulator) -> str:
    lines = [
        f"local stack up: {stack.url}  (Ctrl-C stops everything)",
        f"  AWS (moto)      {stack.moto.endpoint}",
        f"  X-Ray daemon    udp://{stack.pipeline.daemon.address}   OTLP receiver {stack.pipeline.receiver.endpoint}",
        f"  news sources    {stack.news.base_url}",
        f"  traces          {stack.directory / 'traces' / 'segments.jsonl'}   (python -m devstack traces)",
        f"  worker logs     {stack.directory / 'logs'}   (each runtime's output, written when the stack stops)",
        "  schedules       " + (", ".join(f"{key} every {value:g} s"
                                          for key, value in stack.scheduler.intervals_s.items()) or "off"),
        f"  alert rule      {stack.seeded.alert.ticker} {stack.seeded.alert.direction} {stack.seeded.alert.threshold}"
        f" -> {stack.seeded.alert.email}",
        f"  demo sign-in    {stack.seeded.auth.username} / {stack.seeded.auth.password}"
        f"   (Cognito pool {stack.seeded.auth.user_pool_id}, moto)",
    ]
    lines += [f"  note: {note}" for note in stack.notes]
    return "\n".join(lines)


def cmd_demo(args: argparse.Namespace) -> int:
    from devstack.demo.scenario import run_demo

    directory = args.dir or devstack_dir()
    running = running_emulator(directory)
    if running is not None:
        print(f"error: a local stack is already running from {directory} (pid {running['pid']}, {running['gateway']}):"
              " stop it first, or give the demo its own --dir", file=sys.stderr)
        return 2
    options = EmulatorOptions(host=args.host, port=args.port, directory=directory, sse_runtime=args.sse_runtime)
    try:
        return run_demo(options, faults=args.faults, hold=_wait_for_interrupt if args.hold else None)
    except (PortInUseError, EmulatorStartError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2


def cmd_traces(args: argparse.Namespace) -> int:
    state = running_emulator(args.dir)
    if state is None:
        print("no local stack is running (start one with `make up`, or `python -m devstack up`)", file=sys.stderr)
        return 1
    xray = boto3.client("xray", endpoint_url=state["aws_endpoint"], region_name=REGION,
                        aws_access_key_id=AWS_ENV["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=AWS_ENV["AWS_SECRET_ACCESS_KEY"])
    trace_ids = list(args.trace_id)
    if not trace_ids:
        since = dt.datetime.fromtimestamp(float(state["started_at"]), dt.UTC) - dt.timedelta(minutes=1)
        # The id's second field is the trace's start (epoch seconds, hex): newest last.
        trace_ids = sorted(recent_trace_ids(xray, since), key=lambda trace_id: trace_id.split("-")[1])[-args.limit:]
    trees = read_traces(xray, trace_ids)
    found = {tree.trace_id for tree in trees}
    for trace_id in trace_ids:
        if trace_id not in found:
            print(f"trace {trace_id}: not found", file=sys.stderr)
    for tree in sorted(trees, key=lambda t: min((float(d.get("start_time", 0)) for d in t.documents), default=0)):
        if args.json:
            print(json.dumps({"trace_id": tree.trace_id, "documents": tree.documents}, separators=(",", ":")))
        else:
            print(render(tree))
            print()
    if not trees and not args.json:
        print("no traces yet")
    return 0 if len(found) == len(set(trace_ids)) else 1


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    return {"up": cmd_up, "demo": cmd_demo, "traces": cmd_traces}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
