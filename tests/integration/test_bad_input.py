"""Arbitrary events into every function, each through its own trigger's shape.

SNS events for analysis and notification, API Gateway requests (and non-proxy events) for the
dashboard, schedule events for ingestion, metrics and the canary, Function URL requests and events
for the SSE function. Whatever arrives: a typed error or a 4xx, never a crash, and never a
silently swallowed message: a refused delivery raises, so Lambda retries it and then keeps it in
the function's dead-letter queue (proved end to end through the devstack's Lambda service).

Hypothesis examples are derandomized (the same ones every run) and bounded to keep the file fast.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import string
import time
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.aws.sns_delivery import Publication, SnsDelivery
from devstack.edge.api_gateway import ApiGateway, GatewayRequest
from devstack.fakes.sendgrid_sink import SendGridSink
from devstack.lambda_.events import function_url_event
from devstack.lambda_.invocation import invoke_in_process
from devstack.lambda_.lambda_service import LambdaService
from devstack.stack import load_stack
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import render
from lib.alerts import AlertTable, Direction
from lib.news.model import iso_ms
from lib.tracing.header import TraceHeader
from tests.fixtures.news_pipeline import (  # noqa: F401  (fixtures)
    NewsHarness,
    news_fixture,
    news_server_fixture,
)
from tests.integration.canary_stack import ProbeTargets, canary_probe_env
from tests.integration.test_sse_stream import SseEnvironment

EXAMPLES = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
FEW = settings(EXAMPLES, max_examples=6)

# The errors each function may answer bad input with: its own typed errors and pydantic's.
ANALYSIS_REFUSALS = {"ValidationError", "MalformedSnsEventError", "ItemNotFoundError"}
NOTIFICATION_REFUSALS = {"ValidationError", "MalformedSnsEventError"}
DASHBOARD_REFUSALS = {"NotAnApiGatewayEventError"}
SSE_REFUSALS = {"MalformedEventError"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=12), children, max_size=3),
    max_leaves=8,
)
arbitrary_text = st.one_of(st.text(max_size=80), st.text(string.printable, max_size=80), json_values.map(json.dumps))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into a JSON document (dict keys, list indexes), the root excluded."""
    found: list[tuple[Any, ...]] = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        found.append((*prefix, key))
        found.extend(_paths(child, (*prefix, key)))
    return found


def _mutate(document: Any, data: st.DataObject, label: str) -> Any:
    """`document` with up to three random changes: a value replaced (JSON or text) or a key dropped."""
    mutated = copy.deepcopy(document)
    for _ in range(data.draw(st.integers(0, 3), label=f"{label} changes")):
        paths = _paths(mutated)
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label=f"{label} path")
        parent = mutated
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and data.draw(st.booleans(), label=f"{label} drop"):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(st.one_of(json_values, arbitrary_text), label=f"{label} value")
    return mutated


def _sns_event(delivery: SnsDelivery, topic_arn: str, messages: list[Any]) -> dict[str, Any]:
    records = []
    for message in messages:
        body = message if isinstance(message, str) else json.dumps(message)
        publication = Publication(topic_arn, body, None, str(uuid.uuid4()), None, time.time())
        records.extend(delivery.event(publication)["Records"])
    return {"Records": records}


def _arbitrary_sns_event(data: st.DataObject, delivery: SnsDelivery, topic_arn: str,
                         valid_message: dict[str, Any]) -> dict[str, Any]:
    """A delivery built around one valid message: its message, record or envelope changed, or whole
    events that are no SNS delivery at all."""
    shape = data.draw(st.sampled_from(["message", "message text", "record", "two records", "event", "anything"]),
                      label="shape")
    if shape == "anything":
        drawn: dict[str, Any] = data.draw(st.dictionaries(st.text(max_size=12), json_values, max_size=4),
                                          label="event")
        return drawn
    if shape == "message text":
        return _sns_event(delivery, topic_arn, [data.draw(arbitrary_text, label="message text")])
    if shape == "message":
        return _sns_event(delivery, topic_arn, [_mutate(valid_message, data, "message")])
    event = _sns_event(delivery, topic_arn, [valid_message])
    if shape == "two records":  # a valid record beside a changed one: the whole delivery is refused or done
        event["Records"].append(_mutate(_sns_event(delivery, topic_arn, [valid_message])["Records"][0], data,
                                        "second record"))
        return event
    if shape == "record":
        return {"Records": [_mutate(event["Records"][0], data, "record")]}
    mutated: dict[str, Any] = _mutate(event, data, "event")
    return mutated


def _error_name(error: BaseException) -> str:
    return type(error).__name__


# -- analysis (SNS) ----------------------------------------------------------------------------------
@pytest.mark.req("FR-018", "FR-005", "FR-029")
@EXAMPLES
@given(data=st.data())
def test_analysis_scores_a_delivery_whole_or_refuses_it_with_a_typed_error_writing_nothing(
    news: NewsHarness, data: st.DataObject
) -> None:
    news.published("sentiment_scored")  # the fixture lives across examples: start from none seen
    item = news.store_item(f"Chipmaker lifts its outlook {uuid.uuid4().hex[:8]}", "Demand stays strong.")
    event = _arbitrary_sns_event(data, news.delivery, news.resources.topics["news_items"], item.message())
    upstream = TraceHeader.new_root()
    try:
        result, _ = news.analyse(event, upstream=upstream)
    except Exception as error:
        assert _error_name(error) in ANALYSIS_REFUSALS, repr(error)
        assert news.item(item)["status"] == "pending"  # nothing written: the retry or the DLQ still has it
        assert news.published("sentiment_scored") == []
        return
    # Accepted: every record was analysed (none dropped on the way).
    assert len(result["items"]) == len(event["Records"]) >= 1
    assert news.item(item)["status"] == "analyzed"


# -- notification (SNS) ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sendgrid(stack_resources: Resources, moto_server: MotoServer) -> Iterator[SendGridSink]:
    with SendGridSink(hang_s=1) as sink:
        sink.store_api_key(stack_resources.secrets["sendgrid"])
        yield sink


@pytest.fixture(scope="module")
def alert_rule(stack_resources: Resources) -> Iterator[str]:
    alerts = AlertTable(stack_resources.tables["config"])
    rule, _ = alerts.create("owner-badin", "BADIN", Direction.ABOVE, 0.1, "desk@example.com", dt.datetime.now(dt.UTC))
    yield rule.alert_id
    alerts.delete(rule.owner, rule.alert_id)


def _scored_message(score: float = 0.7) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    return {"item_id": uuid.uuid4().hex, "published_at": iso_ms(now - dt.timedelta(minutes=3)), "ticker": "BADIN",
            "headline": "Badin shares jump", "label": "positive", "score": score, "analyzed_at": iso_ms(now)}


@pytest.mark.req("FR-018", "FR-028", "SC-011")
@EXAMPLES
@given(data=st.data())
def test_notification_mails_for_a_whole_delivery_or_refuses_it_with_a_typed_error_sending_nothing(
    invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources, sendgrid: SendGridSink,
    alert_rule: str, data: st.DataObject
) -> None:
    sendgrid.clear()
    delivery = SnsDelivery(load_stack(), stack_resources, trace_pipeline.daemon.address)
    event = _arbitrary_sns_event(data, delivery, stack_resources.topics["sentiment_scored"], _scored_message())
    env = {**invoke.env("notification"), **sendgrid.environment(), "SENDGRID_RETRY_DELAYS_S": "0.01",
           "SENDGRID_TIMEOUT_S": "1"}
    try:
        result, _ = invoke_in_process(load_stack().function("notification"), event, env,
                                      trace_pipeline.daemon.address)
    except Exception as error:
        assert _error_name(error) in NOTIFICATION_REFUSALS, repr(error)
        assert sendgrid.sent() == []
        return
    assert len(result["notifications"]) == len(event["Records"]) >= 1
    assert len(sendgrid.sent()) == sum(report["sent"] for report in result["notifications"])


# -- dashboard (API Gateway) -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def api_stage(invoke: Any, trace_pipeline: TracePipeline) -> ApiGateway:
    return ApiGateway(invoke, trace_pipeline.daemon.address)


methods = st.sampled_from(["GET", "POST", "DELETE", "PUT", "PATCH", "OPTIONS", "HEAD", "get", "TRACE", "BREW"])
segments = st.one_of(st.sampled_from(["tickers", "sentiment", "items", "timeseries", "health", "alerts", "stream",
                                      "AAPL", "..", "%2F", "%00", ""]), st.text(max_size=12))
paths = st.builds(lambda parts: "/api/v2/" + "/".join(parts), st.lists(segments, max_size=3))
queries = st.one_of(
    st.text(max_size=60),
    st.builds(lambda pairs: "&".join(f"{k}={v}" for k, v in pairs),
              st.lists(st.tuples(st.sampled_from(["tickers", "ticker", "limit", "cursor", "resolution", "x"]),
                                 st.text(max_size=20)), max_size=4)),
)
bodies = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()),
                   st.fixed_dictionaries({}, optional={"ticker": arbitrary_text, "direction": arbitrary_text,
                                                       "threshold": json_values, "email": arbitrary_text})
                   .map(lambda v: json.dumps(v).encode()))
header_sets = st.dictionaries(
    st.sampled_from(["Content-Type", "Accept", "Origin", "Content-Length", "X-Amzn-Trace-Id", "User-Agent", "X-Odd"]),
    st.text(string.printable, max_size=40), max_size=4)


@pytest.mark.req("FR-018", "FR-015", "FR-082")
@EXAMPLES
@given(method=methods, path=paths, query=queries, body=bodies, headers=header_sets)
def test_any_request_through_the_api_stage_is_answered_below_500_with_a_json_error_when_refused(
    api_stage: ApiGateway, method: str, path: str, query: str, body: bytes, headers: dict[str, str]
) -> None:
    response = api_stage.handle(GatewayRequest(method, path, query, headers, body))
    assert response.status < 500, (response.status, response.body[:300], response.error)
    if response.status >= 400 and method.upper() != "HEAD":
        refusal = response.json()
        assert set(refusal) >= {"error", "message"}, refusal


@pytest.mark.req("FR-018")
@FEW
@given(event=st.one_of(json_values, st.dictionaries(st.sampled_from(["httpMethod", "path", "body", "headers"]),
                                                    json_values, max_size=3)))
def test_a_non_proxy_event_into_the_dashboard_is_a_typed_error(invoke: Any, event: Any) -> None:
    try:
        result, _ = invoke("dashboard", event)
    except Exception as error:
        assert _error_name(error) in DASHBOARD_REFUSALS, repr(error)
        return
    assert isinstance(result, dict) and 400 <= result["statusCode"] < 500, result


# -- schedule-triggered functions ---------------------------------------------------------------------
scheduled_events = st.one_of(
    json_values, st.dictionaries(st.sampled_from(["source", "detail-type", "detail", "time", "id"]), json_values,
                                 max_size=4))


@pytest.mark.req("FR-018", "FR-045")
@settings(FEW, max_examples=4)
@given(event=scheduled_events)
def test_ingestion_runs_whatever_its_schedule_event_carries(news: NewsHarness, event: Any) -> None:
    env = {**news.invoke.env("ingestion"), **news.server.environment()}
    result, invocation = invoke_in_process(load_stack().function("ingestion"), event, env,
                                           news.pipeline.daemon.address)
    assert result["tickers"] == 4 and not result["failed_sources"]
    assert invocation.sampled


@pytest.mark.req("FR-018", "FR-003")
@FEW
@given(event=scheduled_events)
def test_metrics_runs_whatever_its_schedule_event_carries(invoke: Any, event: Any) -> None:
    result, _ = invoke("metrics", event)
    assert result["stuck_items"] >= 0


@pytest.mark.req("FR-018", "FR-019")
@settings(FEW, max_examples=3)
@given(event=scheduled_events)
def test_the_canary_runs_whatever_its_schedule_event_carries(invoke: Any, trace_pipeline: TracePipeline,
                                                             probe_targets: ProbeTargets, event: Any) -> None:
    # The session's one canary environment (probe endpoint included): its clients are cached across warm
    # invocations, as in Lambda, so every test invokes it with the same environment.
    env = {**invoke.env("canary"), **canary_probe_env(probe_targets), "CANARY_READBACK_DELAYS_S": "0,0",
           "CANARY_BACKOFF_BASE_S": "0"}
    result, _ = invoke_in_process(load_stack().function("canary"), event, env, trace_pipeline.daemon.address)
    assert result["health"] in ("healthy", "degraded", "failed")


# -- SSE (Function URL) ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sse(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources) -> Iterator[SseEnvironment]:
    environment = SseEnvironment(trace_pipeline, moto_server, stack_resources, trace_pipeline.receiver.endpoint,
                                 {"SSE_POLL_INTERVAL_S": "0.2", "SSE_HEARTBEAT_INTERVAL_S": "0.5"}).start()
    assert environment.open("/api/v2/stream/status").prelude(20)[0] == 200
    yield environment
    environment.stop()


sse_paths = st.one_of(st.sampled_from(["/api/v2/stream", "/api/v2/stream/status", "/api/v2/configurations/x/stream",
                                       "/api/v2/configurations//stream", "/api/v2/stream/", "/"]), paths)
sse_headers = st.dictionaries(
    st.sampled_from(["Last-Event-ID", "X-SSE-Session-Id", "X-SSE-Previous-Trace-Id", "X-SSE-Connection-Sequence",
                     "Authorization", "Accept"]),
    st.one_of(st.text(string.printable, max_size=70), st.sampled_from(["1", "0", "-1", "Bearer ", "2026-11-25"])),
    max_size=4)


@pytest.mark.req("FR-018", "FR-081", "FR-048")
@EXAMPLES
@given(method=st.sampled_from(["GET", "GET", "POST", "DELETE", "OPTIONS"]), path=sse_paths, query=queries,
       headers=sse_headers)
def test_any_function_url_request_gets_a_stream_or_a_4xx_never_a_5xx(
    sse: SseEnvironment, method: str, path: str, query: str, headers: dict[str, str]
) -> None:
    event = function_url_event(method, path, headers, query)
    call = sse.runtime.invoke(event, timeout_s=1.5)
    try:
        status, _ = call.prelude(10)
        assert call.error is None, call.error
        assert status in (200, 204) or 400 <= status < 500, status
    finally:
        call.close()


@pytest.mark.req("FR-018")
@FEW
@given(event=st.one_of(json_values, st.just(None)), data=st.data())
def test_an_event_that_is_no_function_url_event_is_a_typed_error_and_the_environment_goes_on(
    sse: SseEnvironment, event: Any, data: st.DataObject
) -> None:
    if event is None:  # a Function URL event with its parts changed
        event = _mutate(function_url_event("GET", "/api/v2/stream/status"), data, "event")
    call = sse.runtime.invoke(event, timeout_s=1.5)
    status, _ = call.prelude(10)
    call.wait(5)
    if call.error is not None:
        assert call.error.error_type in SSE_REFUSALS, call.error
    else:
        assert status < 500, status
    call.close()
    assert sse.open("/api/v2/stream/status").prelude(10)[0] == 200


# -- nothing lost: a refused delivery ends in the dead-letter queue ---------------------------------------
@pytest.fixture(scope="module")
def lambda_service(trace_pipeline: TracePipeline, moto_server: MotoServer, stack_resources: Resources
                   ) -> Iterator[LambdaService]:
    service = LambdaService(load_stack(), stack_resources, trace_pipeline.daemon.address, moto_server.endpoint,
                            retry_delays_s=(0.0, 0.0), max_environments={"analysis": 1, "notification": 1}).start()
    yield service
    service.stop()


def _drain(queue_url: str) -> list[dict[str, Any]]:
    sqs = boto3.client("sqs")
    messages = []
    while batch := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"],
                                       WaitTimeSeconds=0).get("Messages", []):
        for message in batch:
            messages.append(message)
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return messages


@pytest.mark.req("FR-018", "FR-013")
@pytest.mark.parametrize(("function", "topic", "message"), [
    ("analysis", "news_items", '{"item_id": "not-hex", "published_at": "yesterday"}'),
    ("analysis", "news_items", "plain text, not JSON"),
    ("notification", "sentiment_scored", '{"item_id": "x", "score": "high"}'),
])
def test_a_refused_delivery_is_retried_then_kept_whole_in_the_dead_letter_queue(
    lambda_service: LambdaService, trace_pipeline: TracePipeline, stack_resources: Resources,
    function: str, topic: str, message: str
) -> None:
    queue_url = stack_resources.queues[load_stack().function(function).dead_letter_queue or ""]
    _drain(queue_url)
    delivery = SnsDelivery(load_stack(), stack_resources, trace_pipeline.daemon.address)
    event = _sns_event(delivery, stack_resources.topics[topic], [message])
    upstream = TraceHeader.new_root()

    result, _ = lambda_service.invoke_event(function, event, upstream=upstream)

    assert result is None
    attempts = [r for r in lambda_service.records if r.trace_id == upstream.root]
    assert [r.attempt for r in attempts] == [1, 2, 3] and {r.outcome for r in attempts} == {"error"}
    assert {r.error_type for r in attempts} <= (ANALYSIS_REFUSALS | NOTIFICATION_REFUSALS)
    [kept] = _drain(queue_url)
    assert json.loads(kept["Body"]) == event  # the whole delivery, byte for byte: nothing lost
    assert kept["MessageAttributes"]["ErrorMessage"]["StringValue"].split(":")[0] in (
        ANALYSIS_REFUSALS | NOTIFICATION_REFUSALS)
    tree = trace_pipeline.tree(upstream.root, expect_at_least=6)
    handlers = tree.find("## lambda_handler")
    assert len(handlers) == 3 and all(node.document.get("fault") for node in handlers), render(tree)
