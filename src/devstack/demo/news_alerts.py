"""The demo's news-and-alert fault steps (`make demo ARGS=--faults`; README "News and alerts"):

- `retried_alert_sends_once`: the notification fails after one of its emails went out; Lambda's
  asynchronous retry mails only what did not go out, so the sink holds exactly one email per rule;
- `malformed_record_skipped`: a source answers one unreadable record among good ones; the record
  is skipped, counted and traced, the good ones are stored, the source does not fail.

Each is a step of the scenario (`devstack.demo.scenario.Demo.step`), checked through the stack's
own readers: the SendGrid sink, the invocation records, the X-Ray API (`xray.trace_reader`),
CloudWatch (`aws.cloudwatch`).

Example (not run: needs the running stack of a demo):
    >>> for step in NEWS_ALERT_STEPS:                # doctest: +SKIP
    ...     step(demo)
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

from devstack.aws.cloudwatch import metric_sum
from devstack.fakes.news_sources import FailureMode
from devstack.fakes.sendgrid_sink import SinkFailure
from devstack.lambda_.lambda_service import ASYNC_RETRIES
from devstack.xray.trace_reader import Node, silent_failures
from lib.alerts import AlertTable, Direction
from lib.metrics import PER_SOURCE_DIMENSION, Metric
from lib.news.store import NewsTable
from lib.tracing.header import TraceHeader

if TYPE_CHECKING:
    from devstack.demo.scenario import Demo

# Lambda's first retry comes after about a minute; the devstack's after 1 s (lambda_service): said in the title.
RETRIED_ALERT_TITLE = "6.9 alert: fails after a send, retried (1 s here, 1 min in AWS), one email per rule"
MALFORMED_RECORD_TITLE = "6.10 one bad tiingo record among good ones: skipped, counted, traced, source kept"

DELIVER_SUBSEGMENT = "## lambdas.notification.service.deliver"
FETCH_SUBSEGMENT = "## lambdas.ingestion.service.fetch_source"
SECOND_RECIPIENT = "desk@example.com"
SECOND_OWNER = "demo-second-user"  # another user's rule (rules belong to their Cognito user: lib.alerts)
# The mailer's attempts per email (SENDGRID_RETRY_DELAYS_S "1,4" in stack.json: 3): all of them
# fail in the first invocation, so the email fails there and goes out on Lambda's retry.
MAILER_ATTEMPTS = 3
# VADER scores it about +0.90: above the seeded rule's 0.5 (both NVDA rules fire).
ALERT_HEADLINE = "Nvidia wins praise for an excellent, remarkably efficient new chip"
GOOD_HEADLINE = "Apple opens a popular new store to great reviews"
BAD_RECORD_URL = "https://broken.example.com/"  # the fake's unreadable record (news_sources, MALFORMED)


def _in_start_order(nodes: list[Node]) -> list[Node]:
    return sorted(nodes, key=lambda node: float(node.document["start_time"]))


def _children(node: Node) -> list[str]:
    return [str(child.document["name"]) for child in _in_start_order(node.children)]


def retried_alert_sends_once(demo: Demo) -> None:
    """Two NVDA rules fire on one score; SendGrid accepts the seeded rule's email and fails all of the
    second rule's attempts, so the invocation fails after a send (NotificationDeliveryError). Lambda
    retries it with the same event: the seeded rule's idempotency record is COMPLETED (its `deliver`
    says already_sent, with no SendGrid child), the second rule's email goes out. One email per rule.

    Lambda retries a failed asynchronous invocation twice, about one and two minutes later
    (https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html); the devstack
    retries as often but after 1 s and 2 s (`lambda_.lambda_service`), so the step does not wait minutes.
    The failure is SendGrid's, not a lost `UpdateItem`: a record left INPROGRESS would still be
    locked at a 1 s retry, which a retry a minute later in AWS would not find (README, "the window").
    """
    stack = demo.stack
    seeded = stack.seeded.alert
    with demo.step(RETRIED_ALERT_TITLE, ("ingestion", "analysis", "notification")) as report:
        rules = AlertTable(stack.resources.tables["config"])
        second, _ = rules.create(SECOND_OWNER, seeded.ticker, Direction(seeded.direction), seeded.threshold,
                                 SECOND_RECIPIENT, dt.datetime.now(dt.UTC))
        try:
            recipients = [rule.email for rule in rules.all(ticker=seeded.ticker)]
            report.check(recipients == [seeded.email, SECOND_RECIPIENT],
                         f"two {seeded.ticker} rules {seeded.direction} {seeded.threshold}: {recipients}; SendGrid "
                         f"answers 500 to {SECOND_RECIPIENT}'s first {MAILER_ATTEMPTS} requests (the mailer's "
                         "attempts in invocation 1)")
            emails_before, statuses_before = len(stack.sendgrid.sent()), len(stack.sendgrid.statuses)
            stack.sendgrid.fail(SinkFailure.SERVER_ERROR, times=MAILER_ATTEMPTS, recipient=SECOND_RECIPIENT)
            stack.news.publish("tiingo", seeded.ticker, ALERT_HEADLINE, "Reported by the demo's fake news source.")
            header = TraceHeader.new_root()
            result, trace_id = demo.ingest(upstream=header)
        finally:
            stack.sendgrid.recover()
            rules.delete(SECOND_OWNER, second.alert_id)
        report.check(result["new_items"] == 1, f"ingestion stored {result['new_items']} new item (the NVDA headline)")

        attempts = sorted(demo.records("notification", trace_id), key=lambda record: record.attempt)
        seen = [(r.attempt, r.outcome, r.error_type) for r in attempts]
        report.check(seen == [(1, "error", "NotificationDeliveryError"), (2, "ok", None)],
                     f"notification attempt 1 fails after a send (NotificationDeliveryError), Lambda's retry "
                     f"succeeds: {seen} (AWS: up to {ASYNC_RETRIES} retries, 1 and 2 min apart; the devstack "
                     f"waits {' and '.join(f'{delay:g} s' for delay in stack.functions.retry_delays_s)})")
        statuses = stack.sendgrid.statuses[statuses_before:]
        report.check(statuses == [202, 500, 500, 500, 202],
                     f"SendGrid's answers in order: {statuses} (rule 1 accepted; rule 2 failed 3 times, then "
                     "accepted on the retry; rule 1 not sent again)")
        emails = [email.to for email in stack.sendgrid.sent()[emails_before:]]
        report.check(sorted(emails) == sorted([(seeded.email,), (SECOND_RECIPIENT,)]),
                     f"exactly one email per rule in the sink: {emails}")

        tree = demo.tree(report, "ingestion → analysis → notification, failed and retried", trace_id,
                         expect_at_least=8)
        delivered = _in_start_order(tree.find(DELIVER_SUBSEGMENT, alert_id=seeded.alert_id))
        report.check(len(delivered) == 2, f"rule 1: {len(delivered)} `deliver` subsegments (one per attempt)")
        first_sent, replayed = delivered
        report.check(first_sent.document["annotations"].get("already_sent") is False
                     and _children(first_sent).count("SendGrid") == 1,
                     f"attempt 1, rule 1: already_sent=false, one SendGrid call ({_children(first_sent)})")
        report.check(replayed.document["annotations"].get("already_sent") is True
                     and "SendGrid" not in _children(replayed) and not replayed.document.get("fault"),
                     f"retry, rule 1: already_sent=true and no SendGrid child ({_children(replayed)})")
        delivered = _in_start_order(tree.find(DELIVER_SUBSEGMENT, alert_id=second.alert_id))
        report.check(len(delivered) == 2, f"rule 2: {len(delivered)} `deliver` subsegments (one per attempt)")
        failed, retried = delivered
        sendgrid_faults = [bool(child.document.get("fault")) for child in failed.children
                           if child.document["name"] == "SendGrid"]
        report.check(sendgrid_faults == [True] * MAILER_ATTEMPTS,
                     f"attempt 1, rule 2: {len(sendgrid_faults)} SendGrid calls, each a fault (500)")
        report.check(retried.document["annotations"].get("already_sent") is False
                     and _children(retried).count("SendGrid") == 1,
                     f"retry, rule 2: already_sent=false, one SendGrid call ({_children(retried)})")

def malformed_record_skipped(demo: Demo) -> None:
    """Tiingo answers its documented array with one record without its title in the middle; a new
    good headline is in the same response. The record is skipped (index and reason on tiingo's
    `fetch_source`, nothing of its content), `MalformedArticles` +1 for tiingo, the good articles
    are kept and the new one stored; no source fails and no silent-failure path is marked."""
    stack = demo.stack
    ingestion = stack.stack.function("ingestion").name
    with demo.step(MALFORMED_RECORD_TITLE, ("ingestion", "analysis")) as report:
        news = NewsTable(stack.resources.tables["news"])
        today = dt.datetime.now(dt.UTC).date()
        stored_before = news.item_ids_of_ticker("AAPL", today - dt.timedelta(days=1), today)
        # The per-source datum: moto would add the function-wide one to a FunctionName-only read.
        per_source = (PER_SOURCE_DIMENSION, "tiingo")
        counted_before = metric_sum(Metric.MALFORMED_ARTICLES.value, ingestion, demo.started, per=per_source)
        stack.news.publish("tiingo", "AAPL", GOOD_HEADLINE, "Reported by the demo's fake news source.")
        stack.news.fail("tiingo", FailureMode.MALFORMED, times=1)
        result, trace_id = demo.ingest(upstream=TraceHeader.new_root())

        report.check(result["failed_sources"] == {}, f"no failed source: failed_sources {result['failed_sources']}, "
                                                     f"fetched {result['fetched']}")
        tree = demo.tree(report, "ingestion with one malformed tiingo record", trace_id, expect_at_least=6)
        fetches = {source: tree.find(FETCH_SUBSEGMENT, news_source=source) for source in ("tiingo", "finnhub")}
        report.check(all(len(nodes) == 1 for nodes in fetches.values()), "one fetch_source subsegment per source")
        tiingo, finnhub = fetches["tiingo"][0].document, fetches["finnhub"][0].document
        annotations = tiingo["annotations"]
        report.check(annotations.get("malformed_articles") == 1 and not tiingo.get("fault") and not tiingo.get("error")
                     and finnhub["annotations"].get("malformed_articles") == 0,
                     f"tiingo's fetch_source: malformed_articles={annotations.get('malformed_articles')}, "
                     f"no fault (finnhub: {finnhub['annotations'].get('malformed_articles')})")
        skipped = tiingo.get("metadata", {}).get("skipped", {}).get("records", [])
        report.check(len(skipped) == 1 and set(skipped[0]) >= {"index", "reason"},
                     f"tiingo's fetch_source lists the skip: {skipped}")
        raw = json.dumps(tree.documents)
        report.check(BAD_RECORD_URL not in raw, "nothing of the bad record's content is in the trace")
        kept = int(annotations.get("article_count", 0))
        index = skipped[0]["index"]
        report.check(result["fetched"].get("tiingo") == kept and 0 < index < kept,
                     f"the good records kept: {kept} of tiingo's {kept + 1}, on both sides of the bad one "
                     f"(index {index})")
        stored = news.item_ids_of_ticker("AAPL", today - dt.timedelta(days=1), today) - stored_before
        report.check(result["new_items"] == 1 and len(stored) == 1,
                     f"the new good headline of the same response stored: {len(stored)} new AAPL item")
        failed = [str(failure.get("name")) for failure in silent_failures(tree)]
        report.check(failed == [], f"no silent-failure subsegment marked: {failed}")
        counted = metric_sum(Metric.MALFORMED_ARTICLES.value, ingestion, demo.started, per=per_source)
        report.check(counted - counted_before == 1, f"MalformedArticles +{counted - counted_before:g} for "
                                                    f"{ingestion}, {PER_SOURCE_DIMENSION}=tiingo")


NEWS_ALERT_STEPS: tuple[Callable[[Demo], None], ...] = (retried_alert_sends_once, malformed_record_skipped)
