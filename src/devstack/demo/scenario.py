"""`make demo`: the local stack, one scripted scenario, a readable report; exit 0 only if every step worked.

The steps (each one shows its trace ids and trace trees, read back through the X-Ray API):

1. news pipeline: an ingestion run (EventBridge) → SNS → analysis per new item → SNS →
   notification → an email in the SendGrid sink, all in one trace;
2. dashboard: a browser-style request (`Root` and `Parent`, no `Sampled`) through the gateway →
   API Gateway stage → dashboard function → DynamoDB; 2.1: a client going around the edge with
   `Sampled=1` straight to both origins is refused (403), with no invocation and no trace;
3. live stream: an SSE session receives a live update, is cut, reconnects with `Last-Event-ID`,
   `X-SSE-Previous-Trace-Id` and the same session id, and gets what it missed (nothing replayed);
4. metrics run; 5. canary run;
6. with `--faults`: each of the seven silent failure paths of FR-002 injected once at the AWS
   boundary (the fault gate in front of moto, scoped to the step's trace; path 7 at the fake news
   source), each found as exactly one error subsegment plus its metric datum; and a poison
   message that fails analysis three times and lands in its dead-letter queue; then the news and
   alert paths (`devstack.demo.news_alerts`): a notification that fails after a send mails once per
   rule after Lambda's retry, and one bad record among a source's good ones is skipped, not fatal.

Then a summary over every trace the stack recorded: traces, documents, faults, orphans (must be 0),
largest document (must stay under 64 KB), document problems (must be none).

Example (not run: runs the whole demo, about a minute):
    >>> run_demo(EmulatorOptions(port=0), faults=True)   # doctest: +SKIP
    0
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import requests

from devstack.aws.cloudwatch import metric_sum
from devstack.aws.fault_gate import FaultRule
from devstack.console import Console
from devstack.demo.canary_faults import run_canary_faults
from devstack.demo.news_alerts import NEWS_ALERT_STEPS
from devstack.demo.report import (
    REPORT_FILE,
    CheckFailed,
    StepFailed,
    StepReport,
    Summary,
    format_report,
    write_report_json,
)
from devstack.demo.sse_client import SseSession, browser_header
from devstack.edge.cloudfront import EdgeRequest
from devstack.emulator import Emulator, EmulatorOptions
from devstack.fakes.news_sources import FailureMode
from devstack.lambda_.events import scheduled_event
from devstack.lambda_.lambda_service import FunctionUnavailableError
from devstack.lambda_.response_stream import FunctionError
from devstack.xray.trace_reader import (
    Node,
    TraceTree,
    document_problems,
    read_traces,
    recent_trace_ids,
    render,
    silent_failures,
)
from lib.tracing.header import TraceHeader, new_entity_id
from lib.tracing.powertools import SilentFailurePath

TREE_SIBLINGS = 2
DEMO_HEARTBEAT_S = "3"  # the stream's heartbeat (15 s in AWS)
# Lambda does not tell a function its client left: a cut stream runs to its lifetime (120 s in the
# stack map), so the demo's streams live 20 s: long enough for each step, short enough to end
# within STREAM_END_WAIT_S of their cut.
DEMO_STREAM_LIFETIME_S = "20"
STREAM_END_WAIT_S = 30.0
TRACE_SETTLE_S = 10.0


def _notable(node: Node) -> bool:
    """Shown even in a condensed fan-out: the email the pipeline sent."""
    return node.document.get("name") == "SendGrid"


def trace_problems(tree: TraceTree, client_parents: set[str]) -> list[str]:
    """`document_problems`, except the one link X-Ray expects to dangle: a stage segment's parent that is
    the `Parent` a client sent (the browser is the trace's client; it writes no segment)."""
    linked = {f"orphan {doc['name']}/{doc['id']} -> {doc['parent_id']}" for doc in tree.orphans
              if doc["parent_id"] in client_parents and doc.get("origin") == "AWS::ApiGateway::Stage"}
    return [problem for problem in document_problems(tree) if problem not in linked]


class Demo:
    def __init__(self, stack: Emulator, console: Console, faults: bool):
        self.stack = stack
        self.console = console
        self.faults = faults
        self.started = dt.datetime.now(dt.UTC)
        self.reports: list[StepReport] = []

    # helpers ---------------------------------------------------------------------------------------
    @contextmanager
    def step(self, title: str, functions: tuple[str, ...] = ()) -> Iterator[StepReport]:
        report = StepReport(title, functions=functions)
        self.reports.append(report)
        self.console.line(f"\n▶ {title}")
        try:
            yield report
        except CheckFailed:
            pass  # already in the report
        except StepFailed as error:
            report.error = str(error)
        except (FunctionError, FunctionUnavailableError, requests.RequestException, TimeoutError,
                AssertionError, KeyError, ValueError) as error:
            report.error = f"{type(error).__name__}: {error}"
        if not report.ok:
            for key in report.functions:
                report.logs += [f"[{key}] {line}" for line in self.stack.functions.output(key, 8)]
        self.console.line(f"  {'ok' if report.ok else 'FAILED'}: {title}")

    def tree(self, report: StepReport, label: str, trace_id: str, expect_at_least: int = 1) -> TraceTree:
        """The trace read back through the X-Ray API, once complete (documents arrive from several
        processes; the stream's spans a moment after its facade), or as it is after TRACE_SETTLE_S."""
        end = time.monotonic() + TRACE_SETTLE_S
        while True:
            tree = self.stack.pipeline.tree(trace_id, expect_at_least=expect_at_least, timeout_s=20)
            problems = trace_problems(tree, self.stack.gateway.client_parents)
            if not problems or time.monotonic() >= end:
                break
            time.sleep(0.2)
        report.traces.append((label, render(tree, max_siblings=TREE_SIBLINGS, keep=_notable)))
        report.check(not problems, f"{label}: every document valid, no orphan" +
                     (f" ({'; '.join(problems[:3])})" if problems else ""))
        return tree

    def ingest(self, upstream: TraceHeader | None = None) -> tuple[dict[str, Any], str]:
        """An EventBridge-style ingestion run, then the SNS fan-out it caused, to the end."""
        functions = self.stack.functions
        event = scheduled_event(self.stack.stack.function("ingestion"))
        result, invocation = functions.invoke_event("ingestion", event, upstream=upstream)
        if result is None:
            raise StepFailed("the ingestion run failed (see the console and .devstack/logs/ingestion.log)")
        if not functions.wait_idle(120):
            raise StepFailed("the SNS fan-out did not settle within 120 s")
        return result, invocation.trace_header.root

    def records(self, function: str, trace_id: str) -> list[Any]:
        return [r for r in self.stack.functions.records if r.function == function and r.trace_id == trace_id]

    # steps -------------------------------------------------------------------------------------------
    def pipeline(self) -> None:
        with self.step("1. news pipeline: ingestion → SNS → analysis → SNS → notification → email",
                       ("ingestion", "analysis", "notification")) as report:
            emails_before = len(self._emails())
            result, trace_id = self.ingest()
            new_items = int(result["new_items"])
            report.check(new_items > 0, f"ingestion stored {new_items} new items from the fake sources "
                                        f"(fetched {result.get('fetched')})")
            analysed = self.records("analysis", trace_id)
            report.check(len(analysed) >= new_items and all(r.outcome == "ok" for r in analysed),
                         f"{len(analysed)} analysis invocations in the ingestion's trace, all ok")
            notified = self.records("notification", trace_id)
            self.stack.functions.require("notification")
            report.check(len(notified) >= 1 and all(r.outcome == "ok" for r in notified),
                         f"{len(notified)} notification invocations in the same trace, all ok")
            tree = self.tree(report, "ingestion → analysis → notification", trace_id,
                             expect_at_least=4 + 2 * new_items)
            origins = {str(node.document.get("origin")) for node in tree.nodes()}
            report.check({"AWS::SNS", "AWS::Lambda::Function"} <= origins,
                         "one trace id across SNS: SNS segments and every function segment in it (SC-008)")
            sns_topics = {str(node.document.get("aws", {}).get("topic_arn")) for node in tree.nodes()
                          if node.document.get("origin") == "AWS::SNS"}
            report.check(sns_topics <= self.stack.delivery.traced_topics,
                         f"SNS segments only for the topics the X-Ray resource policy covers "
                         f"({', '.join(sorted(arn.rsplit(':', 1)[-1] for arn in sns_topics))})")
            emails = self._emails()[emails_before:]
            alert = self.stack.seeded.alert
            report.check(len(emails) >= 1, f"{len(emails)} email(s) in the SendGrid sink for the rule "
                                           f"{alert.ticker} {alert.direction} {alert.threshold}")

    def dashboard(self) -> None:
        with self.step("2. dashboard: browser-style request → API Gateway → dashboard → DynamoDB",
                       ("dashboard",)) as report:
            header = browser_header()
            tickers = ",".join(self.stack.seeded.tickers)
            response = requests.get(f"{self.stack.url}/api/v2/sentiment?tickers={tickers}",
                                    headers={"X-Amzn-Trace-Id": header.format(), "Origin": self.stack.url},
                                    timeout=30)
            report.check(response.status_code == 200, f"GET /api/v2/sentiment → {response.status_code}")
            body = response.json()
            latest = {ticker: (entry or {}).get("latest") for ticker, entry in body.get("sentiment", {}).items()}
            report.check(any(latest.values()), "latest sentiment per ticker: "
                         + ", ".join(f"{t}={v['label'] if v else '-'}" for t, v in latest.items()))
            returned = response.headers.get("x-amzn-trace-id", "")
            report.check(header.root in returned, f"response x-amzn-trace-id carries the browser's root {header.root}")
            tree = self.tree(report, "browser → API Gateway → dashboard", header.root, expect_at_least=4)
            origins = [str(node.document.get("origin")) for node in tree.nodes()]
            report.check("AWS::ApiGateway::Stage" in origins, "API Gateway stage segment in the browser's trace")
            report.check("AWS::Lambda::Function" in origins, "dashboard function segment in the same trace")
            dynamo = [node for node in tree.nodes() if node.document.get("namespace") == "aws"
                      and node.document.get("name") == "dynamodb"]
            report.check(len(dynamo) >= 1, f"{len(dynamo)} DynamoDB subsegments under the function (SC-001)")

    def direct_origins(self) -> None:
        with self.step("2.1 around the edge: Sampled=1 straight to API Gateway and the Function URL → 403") as report:
            # The devstack's origins listen on no port of their own: a direct call is a request handed to
            # them without what the edge adds (origin-verify header, OAC signature).
            forced = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
            headers = [("X-Amzn-Trace-Id", forced.format())]
            gateway = self.stack.gateway
            if gateway.api is None or gateway.stream is None:
                raise StepFailed("the dashboard or the SSE function is not part of this stack")
            invocations = len(self.stack.functions.records)
            api = gateway.api.handle(EdgeRequest("GET", "/api/v2/tickers", "", headers, b"", "203.0.113.9", forced))
            report.check(api.status == 403, f"API Gateway without {gateway.origin_access.header_name}: {api.status} "
                                            f"{api.body.decode()} (the stage's web ACL)")
            reply = gateway.stream.open(EdgeRequest("GET", "/api/v2/stream", "", headers, b"", "203.0.113.9", forced))
            body = b"".join(reply.chunks())
            reply.close()
            report.check(reply.status == 403, f"Function URL without the edge's SigV4 signature: {reply.status} "
                                              f"{body.decode()} (AWS_IAM + origin access control)")
            report.check(len(self.stack.functions.records) == invocations, "no function invoked")
            time.sleep(1.0)
            recorded = self.stack.pipeline.documents(forced.root)
            report.check(recorded == [], f"nothing recorded in X-Ray for the forced trace {forced.root}")
            report.traces.append(("the forced trace, read back through the X-Ray API",
                                  f"trace {forced.root}  {len(recorded)} documents (refused before any segment)"))

    def live_stream(self) -> None:
        with self.step("3. live stream: SSE update, cut, reconnect with Last-Event-ID, nothing missed",
                       ("sse_streaming",)) as report:
            session = SseSession(self.stack.url)
            status = session.connect()
            report.check(status == 200, f"connection 1 → {status} (trace {session.trace_id})")
            session.next_event(lambda event: True, timeout_s=20)
            report.check(session.retry_ms is not None, f"first frame carries retry: {session.retry_ms} ms (FR-088)")
            first = self._headline("NVDA", "Nvidia unveils a faster and remarkably efficient AI accelerator")
            self.ingest()
            update, _ = session.next_event(lambda e: e.event == "sentiment_update" and first in e.data)
            report.check(True, f"live update received: id {update.id}, {json.loads(update.data).get('label')}")
            first_trace = session.trace_id
            assert first_trace is not None
            received_id = session.last_event_id
            session.cut()
            self.console.line("  connection cut; a headline arrives while the client is away")
            missed = self._headline("TSLA", "Tesla opens a large new battery factory ahead of schedule")
            self.ingest()
            status = session.connect()
            report.check(status == 200, f"connection 2 → {status} with Last-Event-ID {received_id}, "
                                        f"previous trace {first_trace}, sequence 2")
            caught_up, before = session.next_event(lambda e: e.event == "sentiment_update" and missed in e.data)
            replayed = [e.id for e in [*before, caught_up] if e.id and received_id and e.id <= received_id]
            report.check(not replayed, f"the missed update arrived (id {caught_up.id}); nothing at or below "
                                       f"{received_id} replayed (FR-081)")
            second_trace = session.trace_id
            assert second_trace is not None
            # The stream ends itself at its lifetime (FR-090) with a `reconnect` event; the client resumes at once.
            ending, _ = session.next_event(lambda e: e.event == "reconnect",
                                           timeout_s=float(DEMO_STREAM_LIFETIME_S) + 15)
            reason = json.loads(ending.data).get("reason")
            report.check(reason == "lifetime", f"connection 2 ended itself: reconnect event id {ending.id}, "
                                               f"reason {reason}, retry {ending.retry} ms (FR-090)")
            session.cut()
            status = session.connect()
            report.check(status == 200, f"connection 3 → {status}: resumed at once with Last-Event-ID {ending.id}")
            session.cut()
            # A stream's facade segments are written when its invocation ends: the function is not told
            # its client left, so at the end of its lifetime (DEMO_STREAM_LIFETIME_S).
            report.check(self.stack.functions.wait_streams(STREAM_END_WAIT_S),
                         "every stream invocation ended after its client left")
            ends: list[Any] = []
            for label, trace_id in (("SSE connection 1 (cut by its client)", first_trace),
                                    ("SSE connection 2 (the reconnect)", second_trace)):
                tree = self.tree(report, label, trace_id, expect_at_least=3)
                annotations: dict[str, Any] = {}
                for node in tree.nodes():
                    annotations.update(node.document.get("annotations") or {})
                ends.append(annotations.get("end_reason"))
            report.check(ends == ["lifetime", "lifetime"], f"both streams ended by lifetime (end_reason {ends}): "
                                                           "a client's hang-up ends no invocation (FR-085)")
            throttles = self.stack.functions.throttles("sse_streaming")
            report.check(throttles == 0, f"sse_streaming Throttles: {throttles} (reserved concurrency "
                                         f"{self.stack.stack.function('sse_streaming').reserved_concurrency}; "
                                         "past it the Function URL answers 429)")
            report.check(annotations.get("session_id") == session.session_id and
                         annotations.get("previous_trace_id") == first_trace,
                         "the reconnect's spans carry session_id and previous_trace_id (FR-048, SC-020)")

    def metrics(self) -> None:
        with self.step("4. metrics run (EventBridge): stuck items → StuckItems", ("metrics",)) as report:
            result, trace_id = self._scheduled("metrics")
            report.check(True, f"metrics result: {json.dumps(result)[:160]}")
            tree = self.tree(report, "metrics", trace_id, expect_at_least=4)
            names = [str(node.document.get("name")) for node in tree.nodes() if node.document.get("namespace") == "aws"]
            report.check("dynamodb" in names and "monitoring" in names,
                         "DynamoDB and CloudWatch calls are subsegments (FR-003, FR-004)")

    def canary(self) -> None:
        with self.step("5. canary run: batch and stream probe trees complete, X-Ray API reachable, CloudWatch "
                       "round trip", ("canary", "dashboard", "sse_streaming")) as report:
            result, trace_id = self._scheduled("canary")
            report.check(result.get("health") == "healthy",
                         f"canary health {result.get('health')}, failed checks {result.get('failed_checks')}")
            outcomes = {path: probe.get("outcome") for path, probe in result.get("probes", {}).items()}
            report.check(outcomes == {"batch": "complete", "stream": "complete"}, f"probe trees: {outcomes}")
            self.tree(report, "canary", trace_id, expect_at_least=3)

    def silent_paths(self) -> None:
        resources = self.stack.resources
        state, news = resources.tables["state"], resources.tables["news"]
        ingestion = self.stack.stack.function("ingestion").name
        analysis = self.stack.stack.function("analysis").name
        cases: list[tuple[SilentFailurePath, str, FaultRule | None, str]] = [
            (SilentFailurePath.CIRCUIT_BREAKER_LOAD, ingestion,
             FaultRule.dynamodb("Query", table=state, value="breaker"), "Query on the state table (breakers)"),
            (SilentFailurePath.PARALLEL_FETCH, ingestion, None, "the finnhub source answers 503 once"),
            (SilentFailurePath.CIRCUIT_BREAKER_SAVE, ingestion,
             FaultRule.dynamodb("PutItem", table=state, value="breaker"),
             "PutItem of the recovered finnhub breaker"),
            (SilentFailurePath.AUDIT_WRITE, ingestion,
             FaultRule.dynamodb("PutItem", table=state, value="audit#ingestion"), "PutItem of the audit record"),
            (SilentFailurePath.SELF_HEALING_FETCH, ingestion,
             FaultRule.dynamodb("Query", table=news, index="status-index"), "Query on news/status-index"),
            (SilentFailurePath.SNS_PUBLISH, ingestion,
             FaultRule.sns_publish(resources.topics["news_items"]), "Publish to news_items (one message)"),
            (SilentFailurePath.TIMESERIES_FANOUT, analysis,
             FaultRule.dynamodb("TransactWriteItems", table=resources.tables["timeseries"]),
             "TransactWriteItems on the timeseries table"),
        ]
        for number, (path, function_name, rule, where) in enumerate(cases, start=1):
            with self.step(f"6.{number} silent failure path {path.subsegment_name}: {where}",
                           ("ingestion", "analysis")) as report:
                header = TraceHeader.new_root()
                before = metric_sum(path.metric.value, function_name, self.started)
                armed = self.stack.gate.arm(rule, trace_root=header.root) if rule else None
                if path is SilentFailurePath.PARALLEL_FETCH:
                    self.stack.news.fail("finnhub", FailureMode.SERVER_ERROR, times=1)
                if path in (SilentFailurePath.SNS_PUBLISH, SilentFailurePath.TIMESERIES_FANOUT):
                    self._headline("MSFT", f"Microsoft ships a well received update, edition {number}")
                try:
                    self.ingest(upstream=header)
                finally:
                    if armed is not None:
                        self.stack.gate.disarm(armed)
                if armed is not None:
                    report.check(armed.hits == 1, f"the gate answered {armed.hits} call(s) with {armed.code} "
                                                  "(expected exactly one)")
                tree = self.tree(report, path.subsegment_name, header.root, expect_at_least=4)
                failed = [str(failure.get("name")) for failure in silent_failures(tree)]
                report.check(failed == [path.subsegment_name],
                             f"exactly one silent-failure subsegment marked: {failed} (FR-002, SC-004)")
                after = metric_sum(path.metric.value, function_name, self.started)
                report.check(after - before == 1, f"{path.metric.value} +{after - before:g} for {function_name} "
                                                  "(FR-043, SC-019)")

    def dead_letter(self) -> None:
        with self.step("6.8 poison message: analysis fails, Lambda retries twice, the event goes to the DLQ") as report:
            sqs = boto3.client("sqs")
            queue_url = self.stack.resources.queues["analysis_dlq"]
            before = len(self.stack.functions.dead_letters)
            boto3.client("sns").publish(TopicArn=self.stack.resources.topics["news_items"],
                                        Message=json.dumps({"item_id": "not-a-real-item"}))
            report.check(self.stack.functions.wait_idle(60), "delivery and retries settled")
            letters = self.stack.functions.dead_letters[before:]
            report.check(len(letters) == 1 and letters[0]["function"] == "analysis",
                         f"one dead letter from analysis: {letters}")
            trace_id = str(letters[0]["trace_id"])
            attempts = self.records("analysis", trace_id)
            report.check(len(attempts) == 3 and all(r.outcome == "error" for r in attempts),
                         f"{len(attempts)} failed attempts in one trace (1 + 2 retries)")
            messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                           MessageAttributeNames=["All"]).get("Messages", [])
            report.check(any("not-a-real-item" in m["Body"] for m in messages),
                         f"the event is in {self.stack.stack.function('analysis').dead_letter_queue}")
            self.tree(report, "poison message", trace_id, expect_at_least=3)

    # support ------------------------------------------------------------------------------------------
    def _scheduled(self, key: str) -> tuple[dict[str, Any], str]:
        result, invocation = self.stack.scheduler.fire(key)
        if result is None:
            raise StepFailed(f"the {key} run failed (see the console and .devstack/logs/{key}.log)")
        return result, invocation.trace_header.root

    def _headline(self, ticker: str, headline: str) -> str:
        self.stack.news.publish("tiingo", ticker, headline, "Reported by the demo's fake news source.")
        return headline

    def _emails(self) -> list[Any]:
        return self.stack.sendgrid.sent()

    # summary --------------------------------------------------------------------------------------------
    def summary(self) -> Summary:
        pipeline = self.stack.pipeline
        pipeline.settle()
        trace_ids = recent_trace_ids(pipeline.xray, self.started - dt.timedelta(minutes=1))
        trees = read_traces(pipeline.xray, trace_ids)
        summary = Summary(traces=len(trees))
        for tree in trees:
            summary.documents += len(tree.documents)
            summary.faults += sum(1 for doc in tree.documents if doc.get("fault"))
            summary.errors += sum(1 for doc in tree.documents if doc.get("error"))
            clients = self.stack.gateway.client_parents
            summary.client_linked += sum(1 for doc in tree.orphans if doc["parent_id"] in clients)
            summary.orphans += sum(1 for doc in tree.orphans if doc["parent_id"] not in clients)
            summary.largest_document = max([summary.largest_document, *tree.raw_sizes])
            summary.problems += [f"{tree.trace_id}: {problem}" for problem in trace_problems(tree, clients)]
        record = self.stack.directory / "traces" / "segments.jsonl"
        summary.recorded_lines = sum(1 for _ in record.open()) if record.is_file() else 0
        return summary


def run_demo(options: EmulatorOptions, faults: bool = False, console: Console | None = None,
             hold: Callable[[], None] | None = None) -> int:
    """Bring the stack up (schedules off: the demo fires them), run the scenario, print the report.

    `hold`: called after the report with the stack still up (`--hold` waits for Ctrl-C), so the report's
    trace view links open; without it the stack stops at once and the links go with it.
    """
    console = console or Console()
    options.schedules_s = {}
    options.feed_interval_s = 0
    options.env_overrides = {**options.env_overrides,
                             "sse_streaming": {"SSE_HEARTBEAT_INTERVAL_S": DEMO_HEARTBEAT_S,
                                               "SSE_STREAM_LIFETIME_S": DEMO_STREAM_LIFETIME_S,
                                               **options.env_overrides.get("sse_streaming", {})}}
    console.line("starting the local stack ...")
    with Emulator(options, console).start() as stack:
        console.line(f"local stack up at {stack.url}; running the scenario")
        demo = Demo(stack, console, faults)
        demo.pipeline()
        demo.dashboard()
        demo.direct_origins()
        demo.live_stream()
        demo.metrics()
        demo.canary()
        if faults:
            demo.silent_paths()
            demo.dead_letter()
            for news_alert_step in NEWS_ALERT_STEPS:  # 6.9, 6.10: devstack.demo.news_alerts
                news_alert_step(demo)
            run_canary_faults(demo)  # 6.11-6.15: devstack.demo.canary_faults
        if not stack.functions.wait_streams(STREAM_END_WAIT_S):
            console.line("warning: a stream is still open; its trace lacks its facade segments until it ends")
        summary = demo.summary()
        console.line(format_report(demo.reports, summary, stack.notes, stack.url))
        ok = all(report.ok for report in demo.reports) and summary.ok
        write_report_json(stack.directory / REPORT_FILE, demo.reports, summary, stack.gateway.client_parents, ok,
                          stack.url)
        if hold is not None:
            console.line(f"the stack stays up for the trace links above ({stack.url}); Ctrl-C stops it")
            hold()
    return 0 if ok else 1
