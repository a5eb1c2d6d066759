"""The canary's fault steps (`make demo ARGS=--faults`, issue 17; README "The canary"): the trace
pipeline broken where production breaks it, and the canary naming each break within two runs.

- 6.11 the X-Ray daemon not listening for the dashboard (its `AWS_XRAY_DAEMON_ADDRESS` a UDP port
  nobody reads): `handler subsegment missing: daemon or IAM` on the batch probe;
- 6.12 the SSE function's collector (OTLP receiver) down (its `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` a
  closed port): `SSE spans missing: collector or exporter` on the stream probe;
- 6.13 the collector exporting to the wrong region (`xray.faults.misrouted_collector`): it accepts
  every span and nothing fails anywhere, yet the stream probe names the same loss; the spans are in
  the other region's X-Ray;
- 6.14 `PutTraceSegments` denied for the dashboard's role (`xray.faults.denied_daemon`): the batch
  probe names the daemon or IAM;
- 6.15 a healthy control: two runs, both probe trees complete, nobody paged.

What is read is what an operator gets, never the canary's logs: its out-of-band alert (SNS, through an
SQS queue subscribed to the alert topic, FR-050) and its per-path metrics (`ProbeTreeComplete`,
`ProbeTreeLost`, FR-036). A fault step runs the canary twice under the fault: the first failed run
pages nobody, the second pages (FR-020). Then, in a `finally`, the function's environment is put back
(`LambdaService.update_environment`, as `UpdateFunctionConfiguration` would), and a third run is
healthy and sends RECOVERED, so the next step starts with no failed run counted.

Example (not run: needs the running stack of a demo):
    >>> run_canary_faults(demo)              # doctest: +SKIP
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3

from devstack.aws.cloudwatch import metric_samples, metric_sum
from devstack.demo.report import StepReport
from devstack.xray.faults import WRONG_REGION, denied_daemon, misrouted_collector
from lambdas.canary.probes import PROBE_PATH_DIMENSION
from lib.metrics import CANARY_NAMESPACE, CanaryMetric

if TYPE_CHECKING:
    from devstack.demo.scenario import Demo

DAEMON_DOWN_TITLE = "6.11 canary: X-Ray daemon not listening for the dashboard → named within two runs"
COLLECTOR_DOWN_TITLE = "6.12 canary: the SSE function's collector (OTLP receiver) down → named within two runs"
MISROUTED_TITLE = "6.13 canary: the collector exports to the wrong region → named within two runs"
DENIED_TITLE = "6.14 canary: PutTraceSegments denied for the dashboard's role → named within two runs"
CONTROL_TITLE = "6.15 canary: healthy control, two runs, both probe trees complete, nobody paged"

DAEMON_OR_IAM = "handler subsegment missing: daemon or IAM"
COLLECTOR_OR_EXPORTER = "SSE spans missing: collector or exporter"
STREAM_SPAN = "sse.global_stream"
# The canary reads back after 30 s and 60 s in AWS, 1 s and 2 s in the devstack; in these steps after
# 0.5 s and 1.5 s (a complete local tree is there within one read): each failed run waits 2 s, not 3 s.
READBACK_DELAYS_S = "0.5,1.5"


def _unused_port(kind: socket.SocketKind) -> int:
    """A loopback port nothing listens on (bound, read, released)."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class AlertInbox:
    """An SQS queue subscribed to the canary's alert topic: the out-of-band channel, as an operator reads it."""

    def __init__(self, topic_arn: str):
        self.sqs, self.sns = boto3.client("sqs"), boto3.client("sns")
        self.queue_url = self.sqs.create_queue(QueueName=f"demo-canary-alerts-{uuid.uuid4().hex[:8]}")["QueueUrl"]
        arn = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["QueueArn"])
        self.subscription = self.sns.subscribe(TopicArn=topic_arn, Protocol="sqs",
                                               Endpoint=arn["Attributes"]["QueueArn"])["SubscriptionArn"]

    def take(self) -> list[tuple[str, dict[str, Any]]]:
        """Every (subject, message) delivered since the last call (the SNS envelope unwrapped)."""
        found: list[tuple[str, dict[str, Any]]] = []
        while messages := self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10,
                                                   WaitTimeSeconds=0).get("Messages", []):
            for message in messages:
                envelope = json.loads(message["Body"])
                found.append((envelope.get("Subject", ""), json.loads(envelope["Message"])))
                self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return found

    def close(self) -> None:
        self.sns.unsubscribe(SubscriptionArn=self.subscription)
        self.sqs.delete_queue(QueueUrl=self.queue_url)


@dataclass
class ProbeCounts:
    """Per probe path: (samples, sum) of ProbeTreeComplete and of ProbeTreeLost, as CloudWatch holds them."""

    complete: tuple[int, float]
    lost: tuple[int, float]

    @classmethod
    def read(cls, canary: str, path: str) -> ProbeCounts:
        def both(metric: CanaryMetric) -> tuple[int, float]:
            per = (PROBE_PATH_DIMENSION, path)
            return (metric_samples(metric.value, canary, per=per, namespace=CANARY_NAMESPACE),
                    metric_sum(metric.value, canary, per=per, namespace=CANARY_NAMESPACE))

        return cls(both(CanaryMetric.PROBE_TREE_COMPLETE), both(CanaryMetric.PROBE_TREE_LOST))

    def since(self, before: ProbeCounts) -> ProbeCounts:
        return ProbeCounts((self.complete[0] - before.complete[0], self.complete[1] - before.complete[1]),
                           (self.lost[0] - before.lost[0], self.lost[1] - before.lost[1]))


@dataclass(frozen=True)
class Fault:
    """One break: which function's environment changes how, what it breaks (`path`), and the words of the alert."""

    title: str
    function: str  # stack key
    path: str  # the probe path it breaks: batch | stream
    words: str
    # The broken piece, started for the step: yields the value of `variable` in the function's environment.
    broken: Callable[[Demo], AbstractContextManager[tuple[str, Any]]]
    variable: str

    @property
    def check(self) -> str:
        return f"{self.path}_probe"

    @property
    def other(self) -> str:
        return "stream" if self.path == "batch" else "batch"


def _dead_daemon(_: Demo) -> AbstractContextManager[tuple[str, Any]]:
    return nullcontext((f"127.0.0.1:{_unused_port(socket.SOCK_DGRAM)}", None))


def _dead_collector(_: Demo) -> AbstractContextManager[tuple[str, Any]]:
    return nullcontext((f"http://127.0.0.1:{_unused_port(socket.SOCK_STREAM)}/v1/traces", None))


@contextmanager
def _denied(demo: Demo) -> Iterator[tuple[str, Any]]:
    with denied_daemon(demo.stack.pipeline) as address:
        yield address, None


def _misrouted(demo: Demo) -> AbstractContextManager[tuple[str, Any]]:
    return misrouted_collector(demo.stack.pipeline)


FAULTS = (
    Fault(DAEMON_DOWN_TITLE, "dashboard", "batch", DAEMON_OR_IAM, _dead_daemon, "AWS_XRAY_DAEMON_ADDRESS"),
    Fault(COLLECTOR_DOWN_TITLE, "sse_streaming", "stream", COLLECTOR_OR_EXPORTER, _dead_collector,
          "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    Fault(MISROUTED_TITLE, "sse_streaming", "stream", COLLECTOR_OR_EXPORTER, _misrouted,
          "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
    Fault(DENIED_TITLE, "dashboard", "batch", DAEMON_OR_IAM, _denied, "AWS_XRAY_DAEMON_ADDRESS"),
)


class CanaryFaults:
    def __init__(self, demo: Demo, inbox: AlertInbox):
        self.demo = demo
        self.inbox = inbox
        self.canary = demo.stack.stack.function("canary").name

    def run(self) -> tuple[dict[str, Any], str]:
        result, trace_id = self.demo._scheduled("canary")
        return result, trace_id

    def counts(self) -> dict[str, ProbeCounts]:
        return {path: ProbeCounts.read(self.canary, path) for path in ("batch", "stream")}

    def faulted(self, fault: Fault) -> None:
        functions = self.demo.stack.functions
        with self.demo.step(fault.title, (fault.function, "canary")) as report:
            before = self.counts()
            with fault.broken(self.demo) as (value, elsewhere):
                previous = functions.update_environment(fault.function, {fault.variable: value})
                try:
                    first, _ = self.run()
                    paged_after_first = self.inbox.take()
                    second, _ = self.run()
                    alerts = self.inbox.take()
                finally:
                    functions.update_environment(fault.function, previous)
                if elsewhere is not None:  # the misrouted collector: where its spans went
                    trace_id = second["probes"]["stream"]["trace_id"]
                    found = elsewhere.batch_get_traces(TraceIds=[trace_id])["Traces"]
                    names = {json.loads(s["Document"]).get("name") for t in found for s in t["Segments"]}
            report.check(True, f"{fault.function}: {fault.variable}={value} (its environments replaced, as "
                               "UpdateFunctionConfiguration does)")
            for number, result in ((1, first), (2, second)):
                checks = result["checks"]
                probe = result["probes"][fault.path]
                report.check(checks[fault.check]["status"] == "failed" and probe["outcome"] == "partial"
                             and fault.words in checks[fault.check]["detail"],
                             f"run {number}: {fault.check} failed, tree {probe['outcome']}: {probe['missing']}")
                report.check(checks[f"{fault.other}_probe"]["status"] == "healthy",
                             f"run {number}: {fault.other}_probe healthy (the break is named, not everything)")
            report.check(paged_after_first == [], f"run 1 pages nobody ({len(paged_after_first)} alert(s), FR-020)")
            self._page(report, alerts, fault)
            moved = self.counts()[fault.path].since(before[fault.path])
            report.check(moved.complete == (2, 0.0) and moved.lost == (2, 0.0),
                         f"{fault.path}: ProbeTreeComplete {moved.complete[1]:g} of {moved.complete[0]}, "
                         f"ProbeTreeLost {moved.lost[1]:g} of {moved.lost[0]}: partial, not lost (FR-036)")
            if elsewhere is not None:
                report.check(STREAM_SPAN in names, f"the collector accepted the spans and exported them to "
                                                   f"{WRONG_REGION}: {STREAM_SPAN} is there, not in us-east-1")
            probe_trace = second["probes"][fault.path]["trace_id"]
            self.demo.tree(report, f"the {fault.path} probe's partial trace (run 2)", probe_trace, expect_at_least=2)
            self._recovered(report)

    def _page(self, report: StepReport, alerts: list[tuple[str, dict[str, Any]]], fault: Fault) -> None:
        report.check(len(alerts) == 1, f"run 2 pages: {len(alerts)} alert(s) on the canary's SNS topic")
        subject, alert = alerts[0]
        detail = alert.get("checks", {}).get(fault.check, {}).get("detail", "")
        report.check(alert.get("type") == "canary_alert" and alert.get("consecutive_failures") == 2
                     and fault.check in subject and fault.words in detail,
                     f"the alert: {subject!r}, consecutive_failures {alert.get('consecutive_failures')}, "
                     f"names {fault.words!r}")

    def _recovered(self, report: StepReport) -> None:
        result, _ = self.run()
        alerts = self.inbox.take()
        kinds = [alert.get("type") for _, alert in alerts]
        report.check(result["health"] == "healthy" and kinds == ["canary_recovery"],
                     f"restored: the next run is {result['health']} and sends {kinds}")

    def control(self) -> None:
        with self.demo.step(CONTROL_TITLE, ("dashboard", "sse_streaming", "canary")) as report:
            before = self.counts()
            runs = [self.run()[0], self.run()[0]]
            for number, result in enumerate(runs, start=1):
                probes = {path: probe["outcome"] for path, probe in result["probes"].items()}
                report.check(result["health"] == "healthy" and probes == {"batch": "complete", "stream": "complete"},
                             f"run {number}: {result['health']}, probe trees {probes}")
            alerts = self.inbox.take()
            report.check(alerts == [], f"{len(alerts)} alert(s) on the canary's SNS topic")
            after = self.counts()
            for path in ("batch", "stream"):
                moved = after[path].since(before[path])
                report.check(moved.complete == (2, 2.0) and moved.lost == (2, 0.0),
                             f"{path}: ProbeTreeComplete {moved.complete[1]:g} of {moved.complete[0]} (ratio 1), "
                             f"ProbeTreeLost {moved.lost[1]:g} of {moved.lost[0]}")
            for path, documents in (("batch", 3), ("stream", 4)):
                self.demo.tree(report, f"the {path} probe's trace (run 1)", runs[0]["probes"][path]["trace_id"],
                               expect_at_least=documents)


def run_canary_faults(demo: Demo) -> None:
    """6.11-6.15, with the canary reading back after READBACK_DELAYS_S, then its environment as before."""
    stack = demo.stack
    inbox = AlertInbox(stack.resources.topics["canary_alerts"])
    previous = stack.functions.update_environment("canary", {"CANARY_READBACK_DELAYS_S": READBACK_DELAYS_S})
    try:
        steps = CanaryFaults(demo, inbox)
        for fault in FAULTS:
            steps.faulted(fault)
        steps.control()
    finally:
        stack.functions.update_environment("canary", previous)
        inbox.close()
