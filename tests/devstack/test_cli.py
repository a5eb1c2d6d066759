"""The local stack as a person runs it: `python -m devstack demo | up | traces`, each a real process.

The stack changes its process's AWS environment (it is the AWS of everything it runs), so each test
runs the CLI in a child process on free ports, with its own state directory.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from devstack.demo.canary_faults import (
    COLLECTOR_DOWN_TITLE,
    CONTROL_TITLE,
    DAEMON_DOWN_TITLE,
    DENIED_TITLE,
    MISROUTED_TITLE,
)
from devstack.demo.news_alerts import MALFORMED_RECORD_TITLE, RETRIED_ALERT_TITLE
from devstack.xray.trace_reader import build_tree, document_problems
from lib.tracing.bounds import MAX_DOCUMENT_BYTES

REPO_ROOT = Path(__file__).resolve().parents[2]
SILENT_PATHS = ("circuit_breaker_load", "parallel_fetcher_aggregation", "circuit_breaker_save", "audit_trail_write",
                "self_healing_item_fetch", "downstream_sns_publish", "timeseries_fanout_batch_write")


def devstack(*args: str, directory: Path) -> list[str]:
    # The SSE function as a process here: the container path (an engine, the image build) is
    # tests/integration/test_sse_container.py's, and these runs have minutes, not an image build, to spare.
    runtime = ["--sse-runtime", "process"] if args[0] in ("up", "demo") else []
    return [sys.executable, "-m", "devstack", *args, *runtime, "--dir", str(directory)]


def child_env() -> dict[str, str]:
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("AWS_", "OTEL_", "_X_AMZN")) and key not in ("LAMBDA_TASK_ROOT",)}
    env["PYTHONPATH"] = str(REPO_ROOT / "src")
    return env


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (from /proc)."""
    children: dict[int, list[int]] = defaultdict(list)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children[int(fields[1])].append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    """`python -m devstack demo --faults`, once for the module (what `make demo ARGS=--faults` runs)."""
    directory = tmp_path_factory.mktemp("demo")
    result = subprocess.run(devstack("demo", "--faults", "--port", "0", directory=directory), env=child_env(),
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=330)
    return result, directory


@pytest.mark.req("FR-002", "SC-004", "FR-043", "SC-019", "SC-008", "FR-013", "FR-081", "FR-048", "SC-020")
def test_the_demo_passes_every_step_and_says_so(demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, directory = demo_run
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    assert "ALL STEPS PASSED" in result.stdout
    report = json.loads((directory / "demo-report.json").read_text())
    titles = [step["title"] for step in report["steps"]]
    assert [path for path in SILENT_PATHS if any(path in title for title in titles)] == list(SILENT_PATHS)
    assert all(step["ok"] and step["trace_ids"] for step in report["steps"]), titles
    for line in ("orphans                     0", "document problems           0"):
        assert line in result.stdout
    for step in report["steps"]:  # each trace names its page in the stack's trace view, in both reports
        assert [view.rsplit("?id=", 1)[1] for view in step["trace_views"]] == step["trace_ids"]
        assert all(f"/trace.html?id={trace_id}" in result.stdout for trace_id in step["trace_ids"])


@pytest.mark.req("FR-018", "FR-028", "FR-005", "FR-058")
def test_the_demo_shows_a_retried_alert_mailing_once_and_a_bad_record_skipped(
        demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Issue 24's two fault steps are in `--faults`, pass, and hold the checks that show what they are
    about: one email per rule after a retry that found rule 1 sent, one skipped record counted per source."""
    result, directory = demo_run
    steps = {step["title"]: step for step in json.loads((directory / "demo-report.json").read_text())["steps"]}
    retried = ("Lambda's retry succeeds: [(1, 'error', 'NotificationDeliveryError'), (2, 'ok', None)]",
               "SendGrid's answers in order: [202, 500, 500, 500, 202]", "exactly one email per rule in the sink",
               "retry, rule 1: already_sent=true and no SendGrid child")
    malformed = ("no failed source: failed_sources {}", "tiingo's fetch_source: malformed_articles=1, no fault",
                 "the new good headline of the same response stored", "MalformedArticles +1 for", "Source=tiingo")
    for title, evidence in ((RETRIED_ALERT_TITLE, retried), (MALFORMED_RECORD_TITLE, malformed)):
        assert title in steps, f"{title!r} not in {list(steps)}"
        step = steps[title]
        assert step["ok"] and step["error"] is None and step["trace_ids"], step
        checks = " | ".join(check["text"] for check in step["checks"] if check["ok"])
        assert [text for text in evidence if text not in checks] == [], checks
        assert f"PASS  {title}" in result.stdout


def passed_checks(result: subprocess.CompletedProcess[str], directory: Path, title: str) -> str:
    """The texts of the step's passed checks, once the step is shown to be in both reports and to pass."""
    steps = {step["title"]: step for step in json.loads((directory / "demo-report.json").read_text())["steps"]}
    assert title in steps, f"{title!r} not in {list(steps)}"
    step = steps[title]
    assert step["ok"] and step["error"] is None and step["trace_ids"], step
    assert f"PASS  {title}" in result.stdout
    return " | ".join(check["text"] for check in step["checks"] if check["ok"])


@pytest.mark.req("FR-066", "FR-074", "FR-075", "FR-036", "FR-050", "FR-020", "SC-014")
def test_the_demo_breaks_the_trace_pipeline_and_the_canary_names_each_break_within_two_runs(
        demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    """Issue 17's steps: each break found by reading the canary's alert and probe metrics (never its
    logs): the first failed run pages nobody, the second pages naming the missing part, the tree is
    partial (not lost), and once restored the next run recovers; the healthy control stays green."""
    result, directory = demo_run
    named = {DAEMON_DOWN_TITLE: ("batch", "handler subsegment missing: daemon or IAM"),
             COLLECTOR_DOWN_TITLE: ("stream", "SSE spans missing: collector or exporter"),
             MISROUTED_TITLE: ("stream", "SSE spans missing: collector or exporter"),
             DENIED_TITLE: ("batch", "handler subsegment missing: daemon or IAM")}
    for title, (path, words) in named.items():
        other = "stream" if path == "batch" else "batch"
        checks = passed_checks(result, directory, title)
        evidence = (f"run 1: {path}_probe failed, tree partial: ['{words}']",
                    f"run 2: {path}_probe failed, tree partial: ['{words}']",
                    f"run 2: {other}_probe healthy", "run 1 pages nobody (0 alert(s), FR-020)",
                    "run 2 pages: 1 alert(s) on the canary's SNS topic", "consecutive_failures 2",
                    f"names '{words}'", f"{path}: ProbeTreeComplete 0 of 2, ProbeTreeLost 0 of 2: partial, not lost",
                    "restored: the next run is healthy and sends ['canary_recovery']")
        assert [text for text in evidence if text not in checks] == [], (title, checks)
    assert "sse.global_stream is there, not in us-east-1" in passed_checks(result, directory, MISROUTED_TITLE)
    control = passed_checks(result, directory, CONTROL_TITLE)
    evidence = ("run 1: healthy, probe trees {'batch': 'complete', 'stream': 'complete'}",
                "run 2: healthy, probe trees {'batch': 'complete', 'stream': 'complete'}",
                "0 alert(s) on the canary's SNS topic",
                "batch: ProbeTreeComplete 2 of 2 (ratio 1), ProbeTreeLost 0 of 2",
                "stream: ProbeTreeComplete 2 of 2 (ratio 1), ProbeTreeLost 0 of 2")
    assert [text for text in evidence if text not in control] == [], control
    step5 = passed_checks(result, directory, "5. canary run: batch and stream probe trees complete, X-Ray API "
                                             "reachable, CloudWatch round trip")
    assert "probe trees: {'batch': 'complete', 'stream': 'complete'}" in step5


@pytest.mark.req("FR-010", "SC-008")
def test_demo_hold_keeps_the_stack_up_so_the_reports_trace_links_open(tmp_path: Path) -> None:
    log = (tmp_path / "demo.log").open("w")
    process = subprocess.Popen(devstack("demo", "--hold", "--port", "0", directory=tmp_path), env=child_env(),
                               cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        report_file = tmp_path / "demo-report.json"
        end = time.monotonic() + 240
        while not report_file.exists():
            assert process.poll() is None, (tmp_path / "demo.log").read_text()[-4000:]
            assert time.monotonic() < end, "the demo wrote no report within 240 s"
            time.sleep(0.5)
        time.sleep(0.5)  # the file is written in one call; let it land
        pipeline = json.loads(report_file.read_text())["steps"][0]
        view = pipeline["trace_views"][0]
        gateway, trace_id = view.split("/trace.html?id=")
        trace = requests.get(f"{gateway}/devstack/traces/{trace_id}", timeout=30)
        assert trace.status_code == 200, trace.text
        origins = {doc.get("origin") for doc in trace.json()["documents"]}
        assert {"AWS::Lambda", "AWS::SNS", "AWS::Lambda::Function"} <= origins
        assert process.poll() is None  # still up, holding
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0, (tmp_path / "demo.log").read_text()[-4000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


@pytest.mark.req("SC-010", "SC-025", "FR-058")
def test_every_recorded_document_of_a_demo_is_valid_connected_and_small(
        demo_run: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    result, directory = demo_run
    assert result.returncode == 0, result.stdout[-3000:]
    client_parents = set(json.loads((directory / "demo-report.json").read_text())["client_parents"])
    by_trace: dict[str, list[str]] = defaultdict(list)
    lines = (directory / "traces" / "segments.jsonl").read_text().splitlines()
    for line in lines:
        by_trace[json.loads(line)["trace_id"]].append(line)

    problems: list[str] = []
    client_linked = []
    for trace_id, raw in by_trace.items():
        tree = build_tree(trace_id, raw)
        linked = {doc["id"] for doc in tree.orphans
                  if doc.get("origin") == "AWS::ApiGateway::Stage" and doc["parent_id"] in client_parents}
        client_linked += linked
        problems += [f"{trace_id}: {problem}" for problem in document_problems(tree)
                     if not any(segment_id in problem for segment_id in linked)]

    assert len(lines) > 300 and len(by_trace) > 15
    assert problems == []
    # The one parent a trace may lack: the browser's, which API Gateway links its stage segment to.
    assert len(client_linked) == 1
    assert max(len(line.encode()) for line in lines) < MAX_DOCUMENT_BYTES


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def running_up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[str], dict[str, Any], Path]]:
    """`python -m devstack up` with a 2 s ingestion schedule, until the test sends Ctrl-C."""
    log = (tmp_path / "up.log").open("w")
    process = subprocess.Popen(
        devstack("up", "--port", "0", "--schedule", "ingestion=2", "--schedule", "canary=0", "--feed-interval", "1",
                 directory=tmp_path),
        env=child_env(), cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, text=True)
    state_file = tmp_path / "emulator.json"
    end = time.monotonic() + 60
    while not state_file.exists():
        assert process.poll() is None, console(tmp_path)
        assert time.monotonic() < end, f"the stack did not come up within 60 s: {console(tmp_path)}"
        time.sleep(0.2)
    yield process, json.loads(state_file.read_text()), tmp_path
    if process.poll() is None:
        process.kill()
        process.wait()
    log.close()


def console(directory: Path) -> str:
    """The tail of `up`'s console, for an assertion message."""
    return (directory / "up.log").read_text()[-4000:]


def test_up_serves_traces_and_stops_on_ctrl_c_leaving_no_process(
        running_up: tuple[subprocess.Popen[str], dict[str, Any], Path]) -> None:
    process, state, directory = running_up
    health = requests.get(f"{state['gateway']}/api/v2/health", timeout=10)
    assert health.status_code == 200 and health.json() == {"status": "ok"}, console(directory)
    end = time.monotonic() + 60
    ingestion = None
    while ingestion is None:  # the schedule fires every 2 s; a run's facade is written when it ends
        assert time.monotonic() < end, f"no finished ingestion run in the traces within 60 s: {console(directory)}"
        traces = subprocess.run(devstack("traces", "--json", directory=directory), env=child_env(), cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=60)
        assert traces.returncode == 0, traces.stderr
        found = [json.loads(line) for line in traces.stdout.splitlines()]
        ingestion = next((t for t in found if any(d.get("origin") == "AWS::Lambda::Function"
                                                  and d["name"].endswith("-ingestion") for d in t["documents"])),
                         None)
        time.sleep(0.5)
    one = subprocess.run(devstack("traces", "--trace-id", ingestion["trace_id"], directory=directory),
                         env=child_env(), cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert one.returncode == 0 and one.stdout.startswith(f"trace {ingestion['trace_id']}")
    assert "[AWS::Lambda::Function]" in one.stdout

    workers = descendants(process.pid)
    assert len(workers) >= 4, console(directory)  # the runtimes of the warm functions
    process.send_signal(signal.SIGINT)
    process.wait(timeout=30)

    output = console(directory)
    assert process.returncode == 0, output
    assert output.splitlines()[-1] == "stopped", output
    assert [pid for pid in workers if alive(pid)] == [], output
    assert not (directory / "emulator.json").exists()
    after = subprocess.run(devstack("traces", directory=directory), env=child_env(), cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=30)
    assert after.returncode == 1 and "no local stack is running" in after.stderr


def test_up_says_clearly_that_the_port_is_taken(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        result = subprocess.run(devstack("up", "--port", str(port), directory=tmp_path), env=child_env(),
                                cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is already in use" in result.stdout
    assert not (tmp_path / "emulator.json").exists()


@pytest.mark.req("FR-090")  # the e2e stack shortens the stream lifetime through it
def test_up_sets_a_functions_environment_variable_over_the_maps_and_rejects_an_unknown_function() -> None:
    from devstack.__main__ import _grouped, _parser

    args = _parser().parse_args(["up", "--env", "sse_streaming:SSE_STREAM_LIFETIME_S=20",
                                 "--env", "sse_streaming:SSE_HEARTBEAT_INTERVAL_S=5"])
    assert _grouped(args.env) == {"sse_streaming": {"SSE_STREAM_LIFETIME_S": "20", "SSE_HEARTBEAT_INTERVAL_S": "5"}}
    for bad in ("nosuch:A=1", "sse_streaming:A", "SSE_STREAM_LIFETIME_S=20"):
        with pytest.raises(SystemExit):
            _parser().parse_args(["up", "--env", bad])
