"""The notification Lambda: a `sentiment_scored` SNS message → alert rules → email through the local
SendGrid sink, traced (FR-028, SC-011), retried on 429/5xx/timeouts, raised when it cannot deliver."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import json
import logging
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import pytest

from devstack.aws.resources import Resources
from devstack.aws.sns_delivery import Publication, SnsDelivery
from devstack.fakes.sendgrid_sink import SendGridSink, SinkFailure
from devstack.lambda_.invocation import Invocation, invoke_in_process
from devstack.stack import FunctionSpec, load_stack
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import Node, TraceTree, ancestors, document_problems, render
from lambdas.notification.quota import QUOTA_PK, EmailCaps, take_email_quota
from lib.alerts import AlertRule, AlertTable, Direction
from lib.metrics import cloudwatch_client
from lib.news.model import iso_ms
from lib.tracing.header import TraceHeader
from tests.fixtures.news_pipeline import aws_calls, aws_fault, function_name
from tests.fixtures.serialized_aws import serialized_dynamodb

# The Lambda's modules are imported by the first invocation, inside the Lambda environment (their
# Tracer and Logger read it), never at test collection: errors are matched by their type's name.
MALFORMED_ERRORS = ("ValidationError", "MalformedSnsEventError")

RECIPIENT = "portfolio.manager@example.com"
OTHER_RECIPIENT = "risk.desk@example.com"
FROM_ADDRESS = "alerts@sentiment-analyzer.invalid"


@contextmanager
def raises(*names: str, match: str | None = None) -> Iterator[pytest.ExceptionInfo[Exception]]:
    with pytest.raises(Exception, match=match) as raised:
        yield raised
    assert type(raised.value).__name__ in names, repr(raised.value)


class Notifications:
    """Alert rules in moto, the SendGrid sink, and the notification function run as Lambda would."""

    def __init__(self, invoke: Any, pipeline: TracePipeline, resources: Resources, sink: SendGridSink):
        self.invoke = invoke
        self.pipeline = pipeline
        self.resources = resources
        self.sink = sink
        self.alerts = AlertTable(resources.tables["config"])
        self.delivery = SnsDelivery(load_stack(), resources, pipeline.daemon.address)
        self.env = {**invoke.env("notification"), **sink.environment(),
                    "SENDGRID_RETRY_DELAYS_S": "0.05,0.2", "SENDGRID_TIMEOUT_S": "1"}

    def rule(self, ticker: str, direction: Direction, threshold: float, email: str = RECIPIENT,
             owner: str | None = None) -> AlertRule:
        created, _ = self.alerts.create(owner or f"owner-{uuid.uuid4().hex}", ticker, direction, threshold,
                                        email, dt.datetime.now(dt.UTC))
        return created

    def message(self, score: float, ticker: str = "AAPL", **changes: Any) -> dict[str, Any]:
        now = dt.datetime.now(dt.UTC)
        label = "positive" if score >= 0.05 else "negative" if score <= -0.05 else "neutral"
        return {"item_id": uuid.uuid4().hex, "published_at": iso_ms(now - dt.timedelta(minutes=4)), "ticker": ticker,
                "headline": f"{ticker} moves on fresh news", "label": label, "score": score,
                "analyzed_at": iso_ms(now), **changes}

    def event(self, message: dict[str, Any] | str) -> dict[str, Any]:
        body = message if isinstance(message, str) else json.dumps(message)
        topic = self.resources.topics["sentiment_scored"]
        return self.delivery.event(Publication(topic, body, None, str(uuid.uuid4()), None, time.time()))

    def run(self, event: dict[str, Any], upstream: TraceHeader, function: FunctionSpec | None = None,
            **env: str) -> tuple[Any, Invocation]:
        result, invocation = invoke_in_process(function or load_stack().function("notification"), event,
                                               {**self.env, **env}, self.pipeline.daemon.address, upstream)
        return result, invocation

    def clear(self) -> None:
        for rule in self.alerts.all():
            self.alerts.delete(rule.owner, rule.alert_id)
        state = boto3.resource("dynamodb").Table(self.resources.tables["state"])
        for row in state.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": QUOTA_PK},
                               ConsistentRead=True)["Items"]:
            state.delete_item(Key={"pk": row["pk"], "sk": row["sk"]})
        self.sink.clear()


@pytest.fixture
def notifications(invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources) -> Iterator[Notifications]:
    with SendGridSink(hang_s=3) as sink:
        sink.store_api_key(stack_resources.secrets["sendgrid"])
        harness = Notifications(invoke, trace_pipeline, stack_resources, sink)
        harness.clear()
        yield harness
        harness.clear()


def sendgrid_calls(tree: TraceTree) -> list[Node]:
    return sorted(tree.find("SendGrid"), key=lambda node: float(node.document["start_time"]))


def raw_documents(pipeline: TracePipeline, trace_id: str) -> str:
    """Every stored document of the trace, as X-Ray returns it (raw JSON text)."""
    pipeline.settle()
    traces = pipeline.xray.batch_get_traces(TraceIds=[trace_id])["Traces"]
    return "\n".join(segment["Document"] for trace in traces for segment in trace["Segments"])


def assert_no_secrets(pipeline: TracePipeline, trace_id: str, sink: SendGridSink) -> None:
    text = raw_documents(pipeline, trace_id)
    assert text  # something was stored: the scan below is not vacuous
    for secret in (sink.api_key, RECIPIENT, OTHER_RECIPIENT, "example.com"):
        assert secret not in text


@pytest.mark.req("FR-028", "SC-011", "FR-029", "SC-003")
def test_a_firing_rule_sends_one_email_recorded_as_its_own_sendgrid_subsegment(notifications: Notifications) -> None:
    fires = notifications.rule("AAPL", Direction.ABOVE, 0.3)
    notifications.rule("AAPL", Direction.BELOW, -0.3, OTHER_RECIPIENT)  # not crossed
    notifications.rule("MSFT", Direction.ABOVE, 0.0, OTHER_RECIPIENT)   # another ticker
    upstream = TraceHeader.new_root()
    message = notifications.message(0.62)

    result, _ = notifications.run(notifications.event(message), upstream)

    assert result == {"notifications": [{"ticker": "AAPL", "rules": 2, "fired": 1, "sent": 1, "already_sent": 0,
                                         "capped": 0}]}
    [email] = notifications.sink.sent()
    assert email.to == (RECIPIENT,) and email.from_address == FROM_ADDRESS
    assert email.subject.startswith("AAPL sentiment +0.62 (positive) is above your threshold +0.30")
    assert message["headline"] in email.text and fires.alert_id in email.text
    assert notifications.sink.statuses == [202]

    tree = notifications.pipeline.tree(upstream.root, expect_at_least=8)
    [call] = sendgrid_calls(tree)
    document = call.document
    assert document["namespace"] == "remote"
    assert document["http"]["request"] == {"method": "POST", "url": f"{notifications.sink.base_url}/v3/mail/send"}
    assert document["http"]["response"] == {"status": 202}
    assert document["annotations"]["attempt"] == 1 and document["annotations"]["duration_ms"] >= 0
    assert document["end_time"] > document["start_time"]
    assert not document.get("fault") and not document.get("error")
    by_id = {node.id: node for node in tree.nodes()}
    deliver = by_id[document["parent_id"]].document
    assert deliver["name"] == "## lambdas.notification.service.deliver"
    assert deliver["annotations"]["alert_id"] == fires.alert_id and deliver["annotations"]["attempts"] == 1
    assert document_problems(tree) == [], render(tree)
    assert_no_secrets(notifications.pipeline, upstream.root, notifications.sink)


@pytest.mark.req("FR-028", "SC-011", "FR-005", "FR-018", "FR-058")
def test_a_sendgrid_500_is_a_fault_subsegment_retried_with_backoff_then_raised_and_counted(
    notifications: Notifications
) -> None:
    rule = notifications.rule("AAPL", Direction.ABOVE, 0.3)
    notifications.sink.fail(SinkFailure.SERVER_ERROR)
    upstream = TraceHeader.new_root()
    with aws_calls(cloudwatch_client(), "PutMetricData") as metrics, raises("NotificationDeliveryError") as raised:
        notifications.run(notifications.event(notifications.message(0.8)), upstream)

    assert notifications.sink.statuses == [500, 500, 500]  # 1 + len(SENDGRID_RETRY_DELAYS_S) attempts
    assert notifications.sink.sent() == []
    assert f"alert {rule.alert_id}" in str(raised.value) and "HTTP 500" in str(raised.value)
    assert RECIPIENT not in str(raised.value)
    [datum] = [d for call in metrics for d in call["MetricData"]]
    assert datum["MetricName"] == "NotificationDeliveryFailures" and datum["Value"] == 1
    assert datum["Dimensions"] == [{"Name": "FunctionName", "Value": function_name("notification")}]

    tree = notifications.pipeline.tree(upstream.root, expect_at_least=10)
    calls = sendgrid_calls(tree)
    assert [call.document["annotations"]["attempt"] for call in calls] == [1, 2, 3]
    for call in calls:
        document = call.document
        assert document["fault"] is True and not document.get("throttle")
        assert document["http"]["response"]["status"] == 500
        [exception] = document["cause"]["exceptions"]
        assert exception["type"] == "SendGridAttemptError" and exception["message"] == "SendGrid answered HTTP 500"
    # the backoff: each retry waited at least its configured delay (0.05 s, then 0.2 s)
    gaps = [float(b.document["start_time"]) - float(a.document["end_time"]) for a, b in itertools.pairwise(calls)]
    assert gaps[0] >= 0.05 and gaps[1] >= 0.2
    deliver = tree.find("## lambdas.notification.service.deliver")[0].document
    assert deliver["fault"] is True and deliver["annotations"]["attempts"] == 3
    assert tree.find("## lambda_handler")[0].document["fault"] is True
    function = next(n.document for n in tree.nodes() if n.document.get("origin") == "AWS::Lambda::Function")
    assert function["fault"] is True and function["cause"]["exceptions"][0]["type"] == "NotificationDeliveryError"
    assert document_problems(tree) == [], render(tree)
    assert_no_secrets(notifications.pipeline, upstream.root, notifications.sink)


@pytest.mark.req("FR-028")
def test_a_transient_failure_is_retried_and_the_email_goes_out(notifications: Notifications) -> None:
    notifications.rule("AAPL", Direction.BELOW, -0.2)
    notifications.sink.fail(SinkFailure.SERVER_ERROR, times=1)
    upstream = TraceHeader.new_root()
    with aws_calls(cloudwatch_client(), "PutMetricData") as metrics:
        result, _ = notifications.run(notifications.event(notifications.message(-0.7)), upstream)

    assert result["notifications"][0]["sent"] == 1
    assert notifications.sink.statuses == [500, 202] and len(notifications.sink.sent()) == 1
    assert metrics == []  # delivered: nothing to count
    tree = notifications.pipeline.tree(upstream.root, expect_at_least=8)  # 2 facades + 6 subsegments
    first, second = sendgrid_calls(tree)
    assert first.document["fault"] is True and first.document["http"]["response"]["status"] == 500
    assert not second.document.get("fault") and second.document["http"]["response"]["status"] == 202
    assert not tree.find("## lambda_handler")[0].document.get("fault")


@pytest.mark.req("FR-028", "FR-005")
def test_rate_limiting_is_recorded_as_throttle_and_retried(notifications: Notifications) -> None:
    notifications.rule("AAPL", Direction.ABOVE, 0.1)
    notifications.sink.fail(SinkFailure.RATE_LIMITED)
    upstream = TraceHeader.new_root()
    with raises("NotificationDeliveryError", match="SendGridUnavailableError"):
        notifications.run(notifications.event(notifications.message(0.5)), upstream)

    assert notifications.sink.statuses == [429, 429, 429]
    calls = sendgrid_calls(notifications.pipeline.tree(upstream.root, expect_at_least=10))
    assert len(calls) == 3
    assert all(c.document["throttle"] is True and c.document["error"] is True and not c.document.get("fault")
               for c in calls)


@pytest.mark.req("FR-028", "FR-005")
def test_a_sendgrid_that_does_not_answer_times_out_as_a_fault_and_is_retried(notifications: Notifications) -> None:
    notifications.rule("AAPL", Direction.ABOVE, 0.1)
    notifications.sink.fail(SinkFailure.HANG, times=1)
    upstream = TraceHeader.new_root()
    result, _ = notifications.run(notifications.event(notifications.message(0.5)), upstream, SENDGRID_TIMEOUT_S="0.3")

    assert result["notifications"][0]["sent"] == 1
    assert notifications.sink.statuses == [None, 202]
    first, second = sendgrid_calls(notifications.pipeline.tree(upstream.root, expect_at_least=8))
    assert first.document["fault"] is True and "response" not in first.document["http"]
    assert first.document["cause"]["exceptions"][0]["message"].startswith("SendGrid did not answer")
    assert second.document["http"]["response"]["status"] == 202


@pytest.mark.req("FR-028", "FR-018")
def test_a_rejected_request_is_not_retried(notifications: Notifications, stack_resources: Resources) -> None:
    notifications.rule("AAPL", Direction.ABOVE, 0.1)
    upstream = TraceHeader.new_root()
    with SendGridSink(api_key="SG.another-account-key") as strict:  # our key is not this account's
        with raises("NotificationDeliveryError", match="SendGridRejectedError"):
            notifications.run(notifications.event(notifications.message(0.5)), upstream, **strict.environment())
        assert strict.statuses == [401]
    [call] = sendgrid_calls(notifications.pipeline.tree(upstream.root, expect_at_least=8))
    assert call.document["error"] is True and not call.document.get("fault")
    assert call.document["http"]["response"]["status"] == 401


@pytest.mark.req("FR-018")
def test_every_firing_rule_is_attempted_and_the_failures_are_raised_together(notifications: Notifications) -> None:
    first = notifications.rule("AAPL", Direction.ABOVE, 0.1)
    notifications.rule("AAPL", Direction.ABOVE, 0.2, OTHER_RECIPIENT)
    notifications.sink.fail(SinkFailure.SERVER_ERROR, times=3)  # the first rule's three attempts
    failing = raises("NotificationDeliveryError", match="1 of 2 alert emails")
    with aws_calls(cloudwatch_client(), "PutMetricData") as metrics, failing as raised:
        notifications.run(notifications.event(notifications.message(0.5)), TraceHeader.new_root())

    assert f"alert {first.alert_id}" in str(raised.value)
    assert [email.to for email in notifications.sink.sent()] == [(OTHER_RECIPIENT,)]
    assert [d["Value"] for call in metrics for d in call["MetricData"]] == [1]


def test_no_crossed_threshold_sends_nothing(notifications: Notifications) -> None:
    notifications.rule("AAPL", Direction.ABOVE, 0.5)
    notifications.rule("AAPL", Direction.BELOW, 0.5)
    upstream = TraceHeader.new_root()
    result, _ = notifications.run(notifications.event(notifications.message(0.5)), upstream)  # equal: not crossed

    assert result == {"notifications": [{"ticker": "AAPL", "rules": 2, "fired": 0, "sent": 0, "already_sent": 0,
                                         "capped": 0}]}
    assert notifications.sink.statuses == []
    tree = notifications.pipeline.tree(upstream.root, expect_at_least=5)
    assert sendgrid_calls(tree) == []
    assert tree.find("## lambdas.notification.service.notify")[0].document["annotations"]["fired"] == 0


@pytest.mark.req("FR-028")
def test_a_retry_is_not_started_when_the_invocation_would_time_out(notifications: Notifications) -> None:
    notifications.rule("AAPL", Direction.ABOVE, 0.1)
    notifications.sink.fail(SinkFailure.SERVER_ERROR)
    short = dataclasses.replace(load_stack().function("notification"), timeout_s=3)
    with raises("NotificationDeliveryError", match="no time left"):
        notifications.run(notifications.event(notifications.message(0.5)), TraceHeader.new_root(), short,
                          SENDGRID_RETRY_DELAYS_S="5")
    assert notifications.sink.statuses == [500]


MALFORMED = {
    "not JSON": "score=0.5",
    "score missing": {"drop": "score"},
    "score as string": {"score": "0.5"},
    "score as bool": {"score": True},
    "score out of range": {"score": 3.0},
    "unknown label": {"label": "bullish"},
    "ticker lower case": {"ticker": "aapl"},
    "unknown field": {"email": RECIPIENT},
    "headline 10 KB": {"headline": "x" * 10_240},
}


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("case", list(MALFORMED))
def test_a_malformed_message_raises_before_anything_is_read_or_sent(notifications: Notifications, case: str) -> None:
    notifications.rule("AAPL", Direction.ABOVE, -1.0)
    change = MALFORMED[case]
    if isinstance(change, str):
        body: dict[str, Any] | str = change
    else:
        body = notifications.message(0.5)
        if "drop" in change:
            body.pop(change["drop"])
        else:
            body.update(change)
    with raises(*MALFORMED_ERRORS):
        notifications.run(notifications.event(body), TraceHeader.new_root())
    assert notifications.sink.statuses == []


@pytest.mark.req("FR-018")
def test_an_event_that_is_not_sns_raises(notifications: Notifications) -> None:
    with raises(*MALFORMED_ERRORS):
        notifications.run({"Records": []}, TraceHeader.new_root())
    with raises(*MALFORMED_ERRORS):
        notifications.run({"detail-type": "Scheduled Event"}, TraceHeader.new_root())


def test_the_secret_must_hold_an_api_key(notifications: Notifications, stack_resources: Resources) -> None:
    from aws_lambda_powertools.utilities import parameters

    notifications.rule("AAPL", Direction.ABOVE, 0.1)
    secrets = boto3.client("secretsmanager")
    name = stack_resources.secrets["sendgrid"]
    secrets.put_secret_value(SecretId=name, SecretString=json.dumps({"key": "misnamed"}))
    parameters.clear_caches()
    try:
        with raises("ConfigurationError", match="has no api_key"):
            notifications.run(notifications.event(notifications.message(0.5)), TraceHeader.new_root())
    finally:
        notifications.sink.store_api_key(name)
        parameters.clear_caches()
    assert notifications.sink.statuses == []


@pytest.mark.req("FR-030", "FR-028", "SC-012")
def test_one_patching_mechanism_and_urllib_stays_unpatched(notifications: Notifications) -> None:
    from aws_xray_sdk.core.patcher import _PATCHED_MODULES

    from lib.tracing.powertools import PATCHED_MODULES

    notifications.rule("AAPL", Direction.ABOVE, 0.1)
    upstream = TraceHeader.new_root()
    notifications.run(notifications.event(notifications.message(0.5)), upstream)
    assert set(_PATCHED_MODULES) == set(PATCHED_MODULES) and "httplib" not in _PATCHED_MODULES
    # so the one SendGrid document is ours, not a second one from an http.client patch
    tree = notifications.pipeline.tree(upstream.root, expect_at_least=8)
    assert [n.document["name"] for n in tree.nodes() if n.document.get("namespace") == "remote"] == ["SendGrid"]


@pytest.mark.req("SC-011", "FR-028")
def test_a_function_logging_at_debug_writes_neither_the_api_key_nor_the_recipient(
        notifications: Notifications, caplog: pytest.LogCaptureFixture) -> None:
    """Lambda's log level control can put the root logger at DEBUG; the SendGrid client's HTTP
    library logs each request's headers (the key) and body (the recipient) at that level."""
    notifications.rule("AAPL", Direction.ABOVE, 0.3)
    caplog.set_level(logging.DEBUG)

    result, _ = notifications.run(notifications.event(notifications.message(0.62)), TraceHeader.new_root())

    assert result["notifications"][0]["sent"] == 1
    assert [email.to for email in notifications.sink.sent()] == [(RECIPIENT,)]
    debug_lines = [record for record in caplog.records if record.levelno == logging.DEBUG]
    assert debug_lines  # DEBUG really was captured: the scan below is not vacuous
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert notifications.sink.api_key not in logged
    assert RECIPIENT not in logged


# -- at most one email per (rule, scored item): Powertools Idempotency ------------------------------------------
def deliveries(tree: TraceTree, alert_id: str) -> list[Node]:
    """The rule's `deliver` subsegments, in the order they ran (one per invocation that reached it)."""
    found = [node for node in tree.find("## lambdas.notification.service.deliver")
             if node.document["annotations"]["alert_id"] == alert_id]
    return sorted(found, key=lambda node: float(node.document["start_time"]))


def idempotency_calls(node: Node, table: str) -> list[dict[str, Any]]:
    """The `dynamodb` subsegments directly under `node` that touched the idempotency table, in order."""
    calls = [child.document for child in node.children
             if child.document["name"] == "dynamodb" and child.document["aws"].get("table_name") == table]
    return sorted(calls, key=lambda document: float(document["start_time"]))


def child_names(node: Node) -> list[str]:
    return [child.document["name"] for child in sorted(node.children, key=lambda n: float(n.document["start_time"]))]


def operations(calls: list[dict[str, Any]]) -> list[str]:
    return [call["aws"]["operation"] for call in calls]


@pytest.mark.req("FR-018", "FR-028", "FR-029", "SC-003", "FR-030")
def test_a_retry_after_the_invocation_failed_past_a_send_mails_only_what_did_not_go_out(
        notifications: Notifications) -> None:
    """Two rules fire; SendGrid accepts the first email, then fails the second rule's three attempts:
    the invocation fails after a send. Lambda's retry runs the same event again: the first rule's
    record is COMPLETED (no second email), the second rule's email goes out. Every read and write of
    the idempotency records is a `dynamodb` subsegment under its rule's `deliver`, under the handler."""
    first = notifications.rule("AAPL", Direction.ABOVE, 0.3)
    second = notifications.rule("AAPL", Direction.ABOVE, 0.2, OTHER_RECIPIENT)
    notifications.sink.fail(SinkFailure.SERVER_ERROR, times=3, recipient=OTHER_RECIPIENT)
    event = notifications.event(notifications.message(0.62))
    upstream = TraceHeader.new_root()  # an async retry keeps the event and its trace header

    with raises("NotificationDeliveryError", match=f"1 of 2 alert emails.*alert {second.alert_id}"):
        notifications.run(event, upstream)
    assert [email.to for email in notifications.sink.sent()] == [(RECIPIENT,)]
    result, _ = notifications.run(event, upstream)  # the asynchronous retry: the same event

    assert result["notifications"] == [{"ticker": "AAPL", "rules": 2, "fired": 2, "sent": 1, "already_sent": 1,
                                        "capped": 0}]
    assert [email.to for email in notifications.sink.sent()] == [(RECIPIENT,), (OTHER_RECIPIENT,)]
    assert notifications.sink.statuses.count(202) == 2  # one accepted request per rule, in both invocations

    table = notifications.resources.tables["idempotency"]
    tree = notifications.pipeline.tree(upstream.root, expect_at_least=27)
    sent, replayed = deliveries(tree, first.alert_id)
    failed, retried = deliveries(tree, second.alert_id)
    # first invocation: lock, daily caps, send, complete / lock, daily caps, three failed sends, release
    assert operations(idempotency_calls(sent, table)) == ["PutItem", "UpdateItem"]
    assert child_names(sent) == ["dynamodb", "dynamodb", "SendGrid", "dynamodb"]
    assert sent.document["annotations"]["already_sent"] is False
    assert operations(idempotency_calls(failed, table)) == ["PutItem", "DeleteItem"]
    assert child_names(failed) == ["dynamodb", "dynamodb", "SendGrid", "SendGrid", "SendGrid", "dynamodb"]
    # the retry: the first rule's lock is refused (the record is there, COMPLETED), nothing is sent
    refused, *reads = idempotency_calls(replayed, table)
    assert refused["aws"]["operation"] == "PutItem" and refused["error"] is True
    assert refused["cause"]["exceptions"][0]["type"] == "ConditionalCheckFailedException"
    assert operations(reads) in ([], ["GetItem"])  # GetItem only where the refusal did not return the record
    assert "SendGrid" not in child_names(replayed)
    assert replayed.document["annotations"]["already_sent"] is True
    assert replayed.document["annotations"]["attempts"] == 0 and not replayed.document.get("fault")
    assert operations(idempotency_calls(retried, table)) == ["PutItem", "UpdateItem"]
    assert retried.document["annotations"]["already_sent"] is False
    # under the handler, like every other call; and exactly the calls the role may make on the table
    for node in (sent, replayed, failed, retried):
        for call in node.children:
            assert "## lambda_handler" in ancestors(tree, call)
    seen = {operation for node in (sent, replayed, failed, retried)
            for operation in operations(idempotency_calls(node, table))}
    granted = load_stack().raw["functions"]["notification"]["iam"]["dynamodb"]["idempotency"]["actions"]
    assert {"PutItem", "UpdateItem", "DeleteItem"} <= seen <= set(granted)
    assert document_problems(tree) == [], render(tree)
    assert_no_secrets(notifications.pipeline, upstream.root, notifications.sink)


@pytest.mark.req("FR-018", "FR-028")
def test_the_same_score_delivered_twice_mails_once_and_a_new_score_of_the_item_mails_again(
        notifications: Notifications) -> None:
    """The key is the rule, the item and its score version, not the event: SNS delivering the
    message twice (a new MessageId, the same content) sends nothing more; a new `analyzed_at` does."""
    notifications.rule("AAPL", Direction.ABOVE, 0.3)
    message = notifications.message(0.62)

    notifications.run(notifications.event(message), TraceHeader.new_root())
    again, _ = notifications.run(notifications.event(message), TraceHeader.new_root())  # another SNS delivery
    assert (again["notifications"][0]["sent"], again["notifications"][0]["already_sent"]) == (0, 1)
    assert len(notifications.sink.sent()) == 1
    rescored = {**message, "score": 0.7, "analyzed_at": iso_ms(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))}
    notifications.run(notifications.event(rescored), TraceHeader.new_root())
    subjects = [email.subject for email in notifications.sink.sent()]
    assert [subject[:21] for subject in subjects] == ["AAPL sentiment +0.62 ", "AAPL sentiment +0.70 "]


@pytest.mark.req("FR-018", "FR-005")
def test_a_crash_between_sendgrids_accept_and_the_records_completion_mails_again_after_the_in_progress_expiry(
        notifications: Notifications) -> None:
    """The window that remains (README, "Alert emails"): the record is INPROGRESS when the email has
    gone out but `UpdateItem` to COMPLETED failed. A retry before the in-progress expiry (the first
    invocation's deadline) is refused without sending; a retry after it sends the email again."""
    from lambdas.notification.once import idempotency_store  # the store the function uses (one per environment)

    notifications.rule("AAPL", Direction.ABOVE, 0.3)
    table = notifications.resources.tables["idempotency"]
    short = dataclasses.replace(load_stack().function("notification"), timeout_s=3)
    event = notifications.event(notifications.message(0.62))
    started = time.monotonic()
    with aws_fault(idempotency_store(table).client, "UpdateItem", "InternalServerError", status=500,
                   when=lambda body: body.get("TableName") == table) as failed_updates, \
            raises("IdempotencyPersistenceLayerError"):
        notifications.run(event, TraceHeader.new_root(), short)
    assert len(failed_updates) == 1 and len(notifications.sink.sent()) == 1  # accepted, then the crash

    with aws_calls(cloudwatch_client(), "PutMetricData") as metrics, \
            raises("NotificationDeliveryError", match="IdempotencyAlreadyInProgressError"):
        notifications.run(event, TraceHeader.new_root(), short)  # retried inside the first one's deadline
    assert len(notifications.sink.sent()) == 1 and metrics == []  # refused, not sent, not a failed email

    time.sleep(max(0.0, short.timeout_s + 0.3 - (time.monotonic() - started)))
    notifications.run(event, TraceHeader.new_root(), short)  # retried after it: Lambda's retries come 1 and 2 min later
    assert len(notifications.sink.sent()) == 2


# Bounds (issue 21): daily caps per owner and per address ------------------------------------------

@pytest.mark.req("FR-028", "SC-011")
def test_an_owners_daily_cap_stops_further_emails_counts_them_and_a_retry_does_not_send_them(
        notifications: Notifications) -> None:
    owner = f"owner-{uuid.uuid4().hex}"
    notifications.rule("AAPL", Direction.ABOVE, 0.3, owner=owner)
    caps = {"ALERT_EMAILS_PER_OWNER_PER_DAY": "2", "ALERT_EMAILS_PER_ADDRESS_PER_DAY": "100"}
    for _ in range(2):
        result, _ = notifications.run(notifications.event(notifications.message(0.6)), TraceHeader.new_root(), **caps)
        assert result["notifications"][0]["sent"] == 1
    over = notifications.event(notifications.message(0.7))
    upstream = TraceHeader.new_root()
    with aws_calls(cloudwatch_client(), "PutMetricData") as metrics:
        result, _ = notifications.run(over, upstream, **caps)

    assert result["notifications"] == [{"ticker": "AAPL", "rules": 1, "fired": 1, "sent": 0, "already_sent": 0,
                                        "capped": 1}]
    assert len(notifications.sink.sent()) == 2
    [datum] = [d for call in metrics for d in call["MetricData"]]
    assert datum["MetricName"] == "AlertEmailsCapped" and datum["Value"] == 1
    again, _ = notifications.run(over, upstream, **caps)  # Lambda's retry of the same event
    assert again["notifications"][0]["capped"] == 1 and len(notifications.sink.sent()) == 2
    tree = notifications.pipeline.tree(upstream.root, expect_at_least=4)
    assert sendgrid_calls(tree) == []
    assert_no_secrets(notifications.pipeline, upstream.root, notifications.sink)


@pytest.mark.req("FR-028")
def test_an_addresss_daily_cap_holds_across_owners(notifications: Notifications) -> None:
    notifications.rule("AAPL", Direction.ABOVE, 0.3)  # two owners, one inbox
    notifications.rule("AAPL", Direction.ABOVE, 0.2)
    result, _ = notifications.run(notifications.event(notifications.message(0.6)), TraceHeader.new_root(),
                                  ALERT_EMAILS_PER_OWNER_PER_DAY="100", ALERT_EMAILS_PER_ADDRESS_PER_DAY="1")
    assert result["notifications"][0] | {"rules": 0} == {"ticker": "AAPL", "rules": 0, "fired": 2, "sent": 1,
                                                          "already_sent": 0, "capped": 1}
    assert [email.to for email in notifications.sink.sent()] == [(RECIPIENT,)]


@pytest.mark.req("FR-028")
def test_the_daily_caps_hold_under_a_burst(notifications: Notifications) -> None:
    from concurrent.futures import ThreadPoolExecutor

    caps = EmailCaps(per_owner_per_day=5, per_address_per_day=100)
    now = dt.datetime.now(dt.UTC)
    with serialized_dynamodb() as resources:  # DynamoDB's transaction isolation (see the fixture)
        table = resources.tables["state"]
        with ThreadPoolExecutor(max_workers=8) as pool:
            taken = list(pool.map(lambda _: take_email_quota(table, caps, "burst-owner", RECIPIENT, now), range(20)))
        stored = boto3.resource("dynamodb").Table(table).query(
            KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": QUOTA_PK},
            ConsistentRead=True)["Items"]
    assert taken.count(True) == 5
    assert sorted(int(row["sent"]) for row in stored) == [5, 5]  # the owner's and the address's counters
    assert all(RECIPIENT not in json.dumps(row, default=str) for row in stored)  # only its digest
    assert all(int(row["expires_at"]) > now.timestamp() for row in stored)  # the table's TTL removes them
