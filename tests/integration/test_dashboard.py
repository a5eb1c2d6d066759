"""The dashboard API through the emulated API Gateway stage (devstack.edge.api_gateway), on moto and the
local trace pipeline: one trace from the browser's header to DynamoDB, the sampling rule at the
edge, CORS, the endpoints' shapes (specs/contracts.md), and a 4xx for every kind of bad input."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import boto3
import pytest

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.edge.api_gateway import ApiGateway, GatewayRequest, GatewayResponse
from devstack.edge.cognito_authorizer import CognitoAuthorizer
from devstack.lambda_.invocation import SamplingRule
from devstack.seed import create_user_pool
from devstack.xray.pipeline import TracePipeline
from devstack.xray.trace_reader import Node, TraceTree, document_problems, render
from lib.news.model import Resolution, iso_ms
from lib.tables import dynamodb
from lib.tracing.header import TraceHeader, new_entity_id
from tests.fixtures.news_pipeline import aws_fault

NOW = dt.datetime.now(dt.UTC)
TICKERS = {"AAPL": "Apple Inc.", "MSFT": "Microsoft Corporation"}


def browser_header() -> TraceHeader:
    """What the frontend sends: Root and Parent, never Sampled (FR-016)."""
    return TraceHeader.new_root().with_parent(new_entity_id(), sampled=None)


class Dashboard:
    """Seeds the tables, sends requests through the gateway, cleans up."""

    def __init__(self, invoke: Any, pipeline: TracePipeline, resources: Resources, moto: MotoServer):
        self.pipeline = pipeline
        # The alert routes behind the Cognito authorizer, with one signed-in user (moto's pool).
        auth = create_user_pool(f"dashboard-users-{uuid.uuid4().hex[:8]}", {"trader@example.com": "Trader-pass-1"})
        jwks = f"{moto.endpoint}/{auth.user_pool_id}/.well-known/jwks.json"
        self.gateway = ApiGateway(invoke, pipeline.daemon.address,
                                  authorizer=CognitoAuthorizer(auth.user_pool_id, jwks_url=jwks))
        self.id_token = boto3.client("cognito-idp").initiate_auth(
            AuthFlow="USER_PASSWORD_AUTH", ClientId=auth.client_id,
            AuthParameters={"USERNAME": auth.username, "PASSWORD": auth.password})["AuthenticationResult"]["IdToken"]
        resource = boto3.resource("dynamodb")
        self.news = resource.Table(resources.tables["news"])
        self.timeseries = resource.Table(resources.tables["timeseries"])
        self.config = resource.Table(resources.tables["config"])

    def request(self, method: str, path: str, query: str = "", body: bytes | str | None = None,
                headers: dict[str, str] | None = None, trace: TraceHeader | None = None) -> GatewayResponse:
        sent = {"X-Amzn-Trace-Id": (trace or browser_header()).format(), "Origin": "http://localhost:5173",
                "Authorization": self.id_token, **(headers or {})}
        raw = body.encode() if isinstance(body, str) else body or b""  # bytes go as they are
        return self.gateway.handle(GatewayRequest(method, path, query, sent, raw))

    def get(self, path: str, query: str = "", **kwargs: Any) -> GatewayResponse:
        return self.request("GET", path, query, **kwargs)

    def tree(self, response: GatewayResponse, expect_at_least: int) -> TraceTree:
        return self.pipeline.tree(response.trace_header.root, expect_at_least=expect_at_least)

    # seeding ---------------------------------------------------------------------------------
    def track(self) -> None:
        with self.config.batch_writer() as batch:
            for ticker, name in TICKERS.items():
                batch.put_item(Item={"pk": "ticker", "sk": ticker, "name": name})

    def item(self, ticker: str, headline: str, published: dt.datetime, label: str | None = None,
             score: float | None = None) -> dict[str, Any]:
        stamp = iso_ms(published)
        row: dict[str, Any] = {
            "item_id": hashlib.sha256(headline.encode()).hexdigest()[:32], "published_at": stamp, "ticker": ticker,
            "headline": headline, "summary": f"About {headline}", "source": "tiingo",
            "url": f"https://news.example.com/{uuid.uuid4().hex}", "status": "pending", "status_changed_at": stamp,
            "ingested_at": stamp, "expires_at": int((published + dt.timedelta(days=30)).timestamp()),
        }
        if label is not None:
            analyzed = iso_ms(published + dt.timedelta(seconds=30))
            row.update(status="analyzed", status_changed_at=analyzed, analyzed_at=analyzed, sentiment_label=label,
                       sentiment_score=Decimal(str(score)),
                       analysis_trace_id=f"1-{int(published.timestamp()):08x}-{row['item_id'][:24]}")
        self.news.put_item(Item=row)
        return row

    def bucket(self, ticker: str, resolution: Resolution, start: dt.datetime, **counts: int) -> None:
        total = sum(counts.values())
        self.timeseries.put_item(Item={
            "series_key": f"{ticker}#{resolution}", "bucket_start": iso_ms(resolution.bucket_start(start)),
            "count": total, "score_sum": Decimal(str(round(0.5 * counts.get("positive", 0)
                                                           - 0.5 * counts.get("negative", 0), 4))),
            **counts,
        })

    def clear(self) -> None:
        for table, keys in ((self.news, ("item_id", "published_at")), (self.timeseries, ("series_key", "bucket_start")),
                            (self.config, ("pk", "sk"))):
            rows = table.scan(ConsistentRead=True)["Items"]
            with table.batch_writer() as batch:
                for row in rows:
                    if table is self.config and row["pk"] not in ("ticker", "alert", "alert-owner"):
                        continue
                    batch.delete_item(Key={key: row[key] for key in keys})

    def alert_rows(self) -> list[dict[str, Any]]:
        return list(self.config.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": "alert"},
                                      ConsistentRead=True)["Items"])


@pytest.fixture
def dashboard(invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources,
              moto_server: MotoServer) -> Iterator[Dashboard]:
    harness = Dashboard(invoke, trace_pipeline, stack_resources, moto_server)
    harness.clear()
    harness.track()
    yield harness
    harness.clear()


def aws_operations(tree: TraceTree) -> list[str]:
    return [str(node.document["aws"]["operation"]) for node in tree.nodes()
            if node.document.get("namespace") == "aws" and "operation" in node.document.get("aws", {})]


def chain(tree: TraceTree, node: Node) -> list[str]:
    """Origins (or names) from the trace's root down to `node`."""
    by_id = {each.id: each for each in tree.nodes()}
    names = []
    current: Node | None = node
    while current is not None:
        names.append(str(current.document.get("origin") or current.document["name"]))
        current = by_id.get(str(current.document.get("parent_id", "")))
    return list(reversed(names))


# Tracing ----------------------------------------------------------------------------------------------

@pytest.mark.req("SC-001", "FR-016", "FR-029", "SC-003")
def test_a_browser_request_is_one_trace_from_the_stage_through_the_function_to_dynamodb(dashboard: Dashboard) -> None:
    dashboard.item("AAPL", "Apple opens a new campus", NOW - dt.timedelta(hours=1), "positive", 0.6)
    browser = browser_header()
    response = dashboard.get("/api/v2/items", "ticker=AAPL&limit=5", trace=browser)

    assert response.status == 200, response.body
    assert response.header("x-amzn-trace-id") == f"Root={browser.root}"
    assert response.trace_header.root == browser.root and response.trace_header.sampled is True
    tree = dashboard.tree(response, expect_at_least=7)

    [stage] = tree.roots  # the browser writes no segment: the stage is the trace's root
    assert stage.document["origin"] == "AWS::ApiGateway::Stage"
    assert stage.document["name"] == dashboard.gateway.segment_name
    assert stage.document["parent_id"] == browser.parent  # linked to the browser's Parent
    assert stage.document["http"]["request"]["method"] == "GET"
    assert stage.document["http"]["response"]["status"] == 200
    [lambda_service] = stage.children
    assert lambda_service.document["origin"] == "AWS::Lambda"
    route = ["AWS::ApiGateway::Stage", "AWS::Lambda", "AWS::Lambda::Function", "## lambda_handler",
             "## lambdas.dashboard.api.items"]
    assert chain(tree, tree.find("## lambdas.dashboard.api.items")[0]) == route
    dynamodb_calls = tree.find("dynamodb")
    assert [chain(tree, node) for node in dynamodb_calls] == [[*route, "dynamodb"]] * 2, render(tree)
    assert sorted(aws_operations(tree)) == ["GetItem", "Query"]
    # The only dangling link is the browser's Parent; everything else is a valid, connected document.
    assert document_problems(tree) == [f"orphan {stage.document['name']}/{stage.id} -> {browser.parent}"]
    items = tree.find("## lambdas.dashboard.api.items")[0].document
    assert items["annotations"]["ticker"] == "AAPL" and items["annotations"]["item_count"] == 1


@pytest.mark.req("FR-035")
def test_a_client_sampled_1_does_not_force_sampling_when_the_rule_says_no(
    dashboard: Dashboard, invoke: Any, trace_pipeline: TracePipeline
) -> None:
    never = ApiGateway(invoke, trace_pipeline.daemon.address, sampling_rule=SamplingRule(fixed_rate=0,
                                                                                         reservoir_per_second=0))
    forced = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
    response = never.handle(GatewayRequest("GET", "/api/v2/tickers", headers={"X-Amzn-Trace-Id": forced.format()}))

    assert response.status == 200
    assert response.trace_header.root == forced.root  # the client's Root is kept for linkage ...
    assert response.trace_header.sampled is False     # ... but not its decision
    # A later sampled request's documents arrive, so the pipeline has drained past the first one.
    later = dashboard.get("/api/v2/health")
    dashboard.tree(later, expect_at_least=3)
    assert trace_pipeline.documents(forced.root) == []


@pytest.mark.req("FR-035")
def test_the_function_sees_the_edge_decision_not_the_clients(dashboard: Dashboard) -> None:
    forced = TraceHeader.new_root().with_parent(new_entity_id(), sampled=False)
    response = dashboard.get("/api/v2/health", trace=forced)
    # The rule samples everything here: the client's Sampled=0 is dropped like a Sampled=1 would be.
    assert response.trace_header == TraceHeader(forced.root, response.stage_segment_id, True)
    tree = dashboard.tree(response, expect_at_least=4)
    assert tree.roots[0].document["origin"] == "AWS::ApiGateway::Stage"


@pytest.mark.req("FR-005", "FR-018")
def test_a_dynamodb_failure_faults_the_invocation_and_answers_502_never_200(dashboard: Dashboard) -> None:
    client = dynamodb().meta.client
    with aws_fault(client, "Query", "ProvisionedThroughputExceededException") as failed:
        response = dashboard.get("/api/v2/tickers")
    assert failed
    assert response.status == 502 and response.json() == {"message": "Internal server error"}
    assert response.header("x-amzn-trace-id") == f"Root={response.trace_header.root}"
    tree = dashboard.tree(response, expect_at_least=6)
    function = next(n.document for n in tree.nodes() if n.document.get("origin") == "AWS::Lambda::Function")
    assert function["fault"] is True
    assert tree.find("## lambda_handler")[0].document["fault"] is True
    recorded = [n.document for n in tree.nodes() if isinstance(n.document.get("cause"), dict)]
    assert recorded[0]["cause"]["exceptions"][0]["type"] == "ProvisionedThroughputExceededException"
    assert tree.find("## lambdas.dashboard.api.tickers")[0].document["fault"] is True
    stage = tree.roots[0].document
    assert stage["fault"] is True and stage["http"]["response"]["status"] == 502


# Endpoints ------------------------------------------------------------------------------------------

@pytest.mark.req("SC-001")
def test_tickers_and_health(dashboard: Dashboard) -> None:
    assert dashboard.get("/api/v2/health").json() == {"status": "ok"}
    response = dashboard.get("/api/v2/tickers")
    assert response.status == 200
    assert response.json() == {"tickers": [{"ticker": "AAPL", "name": "Apple Inc."},
                                           {"ticker": "MSFT", "name": "Microsoft Corporation"}]}


def test_sentiment_gives_the_latest_analysed_score_and_the_last_24_hours_label_counts(dashboard: Dashboard) -> None:
    dashboard.item("AAPL", "Apple record quarter", NOW - dt.timedelta(hours=3), "positive", 0.6)
    newest_analysed = dashboard.item("AAPL", "Apple faces probe", NOW - dt.timedelta(hours=1), "negative", -0.4)
    dashboard.item("AAPL", "Apple event tomorrow", NOW - dt.timedelta(minutes=10))  # pending: not a score yet
    dashboard.bucket("AAPL", Resolution.ONE_HOUR, NOW, positive=2, neutral=1)
    dashboard.bucket("AAPL", Resolution.ONE_HOUR, NOW - dt.timedelta(hours=2), negative=1)
    dashboard.bucket("AAPL", Resolution.ONE_HOUR, NOW - dt.timedelta(hours=30), positive=7)  # older than 24 h
    dashboard.bucket("AAPL", Resolution.ONE_DAY, NOW, positive=9)  # another resolution: not counted twice

    response = dashboard.get("/api/v2/sentiment", "tickers=AAPL,MSFT,AAPL")
    assert response.status == 200, response.body
    assert response.json() == {"sentiment": {
        "AAPL": {"latest": {"score": -0.4, "label": "negative", "analyzed_at": newest_analysed["analyzed_at"]},
                 "counts": {"positive": 2, "neutral": 1, "negative": 1}},
        "MSFT": {"latest": None, "counts": {"positive": 0, "neutral": 0, "negative": 0}},
    }}


def test_items_are_paged_newest_first_with_an_opaque_cursor(dashboard: Dashboard) -> None:
    rows = [dashboard.item("AAPL", f"Apple story {n}", NOW - dt.timedelta(minutes=10 * n),
                           *(("positive", 0.5) if n % 2 else (None, None))) for n in range(5)]
    dashboard.item("MSFT", "Microsoft story", NOW)

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        query = "ticker=AAPL&limit=2" + (f"&cursor={cursor}" if cursor else "")
        body = dashboard.get("/api/v2/items", query).json()
        seen.extend(body["items"])
        cursor = body["next_cursor"]
        pages += 1
        if cursor is None:
            break
        assert "AAPL" not in cursor and "item_id" not in cursor  # opaque to clients
    assert pages == 3
    assert [item["item_id"] for item in seen] == [row["item_id"] for row in rows]
    first, second = seen[0], seen[1]
    assert first == {"item_id": rows[0]["item_id"], "ticker": "AAPL", "headline": "Apple story 0",
                     "summary": "About Apple story 0", "source": "tiingo", "url": rows[0]["url"],
                     "published_at": rows[0]["published_at"], "status": "pending", "sentiment": None}
    assert second["status"] == "analyzed" and second["sentiment"] == {
        "label": "positive", "score": 0.5, "trace_id": rows[1]["analysis_trace_id"]}  # the trace that scored it

    page = dashboard.get("/api/v2/items", "ticker=AAPL&limit=2").json()
    other = dashboard.get("/api/v2/items", f"ticker=MSFT&cursor={page['next_cursor']}")
    assert other.status == 400 and other.json()["error"] == "invalid_cursor"


def test_timeseries_returns_the_resolutions_buckets_within_its_window(dashboard: Dashboard) -> None:
    dashboard.bucket("AAPL", Resolution.FIVE_MINUTES, NOW - dt.timedelta(hours=1), positive=3, negative=1)
    dashboard.bucket("AAPL", Resolution.FIVE_MINUTES, NOW, neutral=2)
    dashboard.bucket("AAPL", Resolution.FIVE_MINUTES, NOW - dt.timedelta(hours=20), positive=1)  # beyond 12 h
    dashboard.bucket("AAPL", Resolution.ONE_HOUR, NOW, positive=5)

    body = dashboard.get("/api/v2/timeseries/AAPL", "resolution=5m").json()
    assert body["ticker"] == "AAPL" and body["resolution"] == "5m"
    assert body["buckets"] == [
        {"bucket_start": iso_ms(Resolution.FIVE_MINUTES.bucket_start(NOW - dt.timedelta(hours=1))), "count": 4,
         "avg_score": 0.25, "positive": 3, "neutral": 0, "negative": 1},
        {"bucket_start": iso_ms(Resolution.FIVE_MINUTES.bucket_start(NOW)), "count": 2, "avg_score": 0.0,
         "positive": 0, "neutral": 2, "negative": 0},
    ]
    assert dashboard.get("/api/v2/timeseries/MSFT", "resolution=24h").json()["buckets"] == []


# CORS -----------------------------------------------------------------------------------------------

BROWSER_HEADERS = ["X-Amzn-Trace-Id", "Last-Event-ID", "X-SSE-Session-Id", "X-SSE-Previous-Trace-Id",
                   "X-SSE-Connection-Sequence", "Content-Type", "Authorization", "X-Auth-Token"]


@pytest.mark.req("FR-015", "FR-082", "SC-037")
def test_cors_preflight_allows_the_trace_and_sse_headers_and_responses_expose_the_trace_id(
    dashboard: Dashboard
) -> None:
    preflight = dashboard.request("OPTIONS", "/api/v2/alerts", headers={
        "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": ",".join(BROWSER_HEADERS).lower()})
    assert preflight.status == 204
    allowed = {name.strip().lower() for name in (preflight.header("Access-Control-Allow-Headers") or "").split(",")}
    assert {name.lower() for name in BROWSER_HEADERS} <= allowed
    assert {"GET", "POST", "DELETE"} <= set((preflight.header("Access-Control-Allow-Methods") or "").split(","))

    response = dashboard.get("/api/v2/tickers")
    assert response.header("Access-Control-Allow-Origin") in ("*", "http://localhost:5173")
    exposed = {name.strip().lower() for name in (response.header("Access-Control-Expose-Headers") or "").split(",")}
    assert "x-amzn-trace-id" in exposed
    assert response.header("x-amzn-trace-id") == f"Root={response.trace_header.root}"


# Bad input ------------------------------------------------------------------------------------------

KB10 = "A" * 10 * 1024
VALID_RULE = {"ticker": "AAPL", "direction": "above", "threshold": 0.5}
UNKNOWN_ALERT = "0123456789abcdef0123456789abcdef"


def rule(**changes: Any) -> str:
    body = {**VALID_RULE, **changes}
    return json.dumps({key: value for key, value in body.items() if value is not ...})


# (method, path, query, body, status, error code)
BAD_INPUTS: dict[str, tuple[str, str, str, str | None, int, str]] = {
    "sentiment: tickers missing": ("GET", "/api/v2/sentiment", "", None, 400, "invalid_request"),
    "sentiment: tickers empty": ("GET", "/api/v2/sentiment", "tickers=", None, 400, "invalid_request"),
    "sentiment: empty entry": ("GET", "/api/v2/sentiment", "tickers=AAPL,,MSFT", None, 400, "invalid_request"),
    "sentiment: lower case": ("GET", "/api/v2/sentiment", "tickers=aapl", None, 400, "invalid_request"),
    "sentiment: 10 KB": ("GET", "/api/v2/sentiment", f"tickers={KB10}", None, 400, "invalid_request"),
    "sentiment: 21 tickers": ("GET", "/api/v2/sentiment", "tickers=" + ",".join(f"T{n}" for n in range(21)), None,
                              400, "invalid_request"),
    "sentiment: unknown ticker": ("GET", "/api/v2/sentiment", "tickers=AAPL,ZZZZ", None, 404, "unknown_ticker"),
    "items: ticker missing": ("GET", "/api/v2/items", "limit=5", None, 400, "invalid_request"),
    "items: limit not a number": ("GET", "/api/v2/items", "ticker=AAPL&limit=abc", None, 400, "invalid_request"),
    "items: limit fractional": ("GET", "/api/v2/items", "ticker=AAPL&limit=2.5", None, 400, "invalid_request"),
    "items: limit zero": ("GET", "/api/v2/items", "ticker=AAPL&limit=0", None, 400, "invalid_request"),
    "items: limit too large": ("GET", "/api/v2/items", "ticker=AAPL&limit=101", None, 400, "invalid_request"),
    "items: ticker 10 KB": ("GET", "/api/v2/items", f"ticker={KB10}", None, 400, "invalid_request"),
    "items: ticker with a quote": ("GET", "/api/v2/items", "ticker=AA'PL", None, 400, "invalid_request"),
    "items: unknown ticker": ("GET", "/api/v2/items", "ticker=ZZZZ", None, 404, "unknown_ticker"),
    "items: forged cursor": ("GET", "/api/v2/items", "ticker=AAPL&cursor=eyJpdGVtX2lkIjoiMSJ9", None, 400,
                             "invalid_cursor"),
    "items: cursor not base64": ("GET", "/api/v2/items", "ticker=AAPL&cursor=%%%", None, 400, "invalid_cursor"),
    "items: cursor 10 KB": ("GET", "/api/v2/items", f"ticker=AAPL&cursor={KB10}", None, 400, "invalid_request"),
    "timeseries: resolution missing": ("GET", "/api/v2/timeseries/AAPL", "", None, 400, "invalid_request"),
    "timeseries: resolution unknown": ("GET", "/api/v2/timeseries/AAPL", "resolution=2m", None, 400,
                                       "invalid_request"),
    "timeseries: lower-case ticker": ("GET", "/api/v2/timeseries/aapl", "resolution=5m", None, 400,
                                      "invalid_request"),
    "timeseries: ticker 10 KB": ("GET", f"/api/v2/timeseries/{KB10}", "resolution=5m", None, 400, "invalid_request"),
    "timeseries: unknown ticker": ("GET", "/api/v2/timeseries/ZZZZ", "resolution=5m", None, 404, "unknown_ticker"),
    "alerts: body missing": ("POST", "/api/v2/alerts", "", None, 400, "invalid_request"),
    "alerts: invalid JSON": ("POST", "/api/v2/alerts", "", '{"ticker": "AAPL",', 400, "invalid_json"),
    "alerts: not an object": ("POST", "/api/v2/alerts", "", "[1, 2]", 400, "invalid_request"),
    "alerts: field missing": ("POST", "/api/v2/alerts", "", rule(direction=...), 400, "invalid_request"),
    "alerts: unknown field": ("POST", "/api/v2/alerts", "", rule(admin=True), 400, "invalid_request"),
    "alerts: threshold as string": ("POST", "/api/v2/alerts", "", rule(threshold="0.5"), 400, "invalid_request"),
    "alerts: threshold as bool": ("POST", "/api/v2/alerts", "", rule(threshold=True), 400, "invalid_request"),
    "alerts: threshold out of range": ("POST", "/api/v2/alerts", "", rule(threshold=1.5), 400, "invalid_request"),
    "alerts: threshold NaN": ("POST", "/api/v2/alerts", "", rule().replace("0.5", "NaN"), 400, "invalid_request"),
    "alerts: direction unknown": ("POST", "/api/v2/alerts", "", rule(direction="sideways"), 400, "invalid_request"),
    "alerts: an address named": ("POST", "/api/v2/alerts", "", rule(email="victim@example.org"), 400,
                                 "invalid_request"),
    "alerts: email 10 KB": ("POST", "/api/v2/alerts", "", rule(email=f"{KB10}@example.com"), 400, "invalid_request"),
    "alerts: ticker 10 KB": ("POST", "/api/v2/alerts", "", rule(ticker=KB10), 400, "invalid_request"),
    "alerts: multipart without boundary": ("POST", "/api/v2/alerts", "", rule(), 400, "invalid_request"),
    "delete: id with a non-ASCII character": ("DELETE", "/api/v2/alerts/%C2%84", "", None, 400, "invalid_request"),
    "alerts: ticker as number": ("POST", "/api/v2/alerts", "", rule(ticker=42), 400, "invalid_request"),
    "alerts: unknown ticker": ("POST", "/api/v2/alerts", "", rule(ticker="ZZZZ"), 404, "unknown_ticker"),
    "alerts: body over 16 KB": ("POST", "/api/v2/alerts", "", rule(email="a" * 17_000), 413, "payload_too_large"),
    "alerts: invalid JSON over 16 KB": ("POST", "/api/v2/alerts", "", "{" * 17_000, 413, "payload_too_large"),
    "delete: malformed id": ("DELETE", "/api/v2/alerts/not-an-id", "", None, 400, "invalid_request"),
    "delete: unknown id": ("DELETE", f"/api/v2/alerts/{UNKNOWN_ALERT}", "", None, 404, "alert_not_found"),
    "unknown route": ("GET", "/api/v2/nothing-here", "", None, 404, "not_found"),
    "unknown version": ("GET", "/api/v3/tickers", "", None, 404, "not_found"),
    "root": ("GET", "/", "", None, 404, "not_found"),
    "POST tickers": ("POST", "/api/v2/tickers", "", "{}", 405, "method_not_allowed"),
    "DELETE health": ("DELETE", "/api/v2/health", "", None, 405, "method_not_allowed"),
    "PUT alerts": ("PUT", "/api/v2/alerts", "", rule(), 405, "method_not_allowed"),
    "GET one alert": ("GET", f"/api/v2/alerts/{UNKNOWN_ALERT}", "", None, 405, "method_not_allowed"),
    "PATCH items": ("PATCH", "/api/v2/items", "ticker=AAPL", None, 405, "method_not_allowed"),
}


@pytest.mark.req("FR-018")
@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gets_the_right_4xx_with_a_json_error_and_changes_nothing(dashboard: Dashboard, case: str) -> None:
    method, path, query, body, status, code = BAD_INPUTS[case]
    content_type = "multipart/form-data" if "multipart" in case else "application/json"
    response = dashboard.request(method, path, query, body, headers={"Content-Type": content_type})

    assert response.status == status, response.body[:500]
    error = response.json()
    assert set(error) == {"error", "message"} and error["error"] == code
    assert 0 < len(error["message"]) <= 1000 and KB10 not in error["message"]
    assert response.header("x-amzn-trace-id") == f"Root={response.trace_header.root}"
    assert response.header("Access-Control-Expose-Headers") == "x-amzn-trace-id"
    if status == 405:
        assert method not in (response.header("Allow") or "") and "OPTIONS" in (response.header("Allow") or "")
    assert dashboard.alert_rows() == []


@pytest.mark.req("FR-018", "FR-005")
def test_a_validation_error_names_the_parameter_and_what_is_wrong(dashboard: Dashboard) -> None:
    response = dashboard.get("/api/v2/items", "ticker=AAPL&limit=abc")
    assert response.json()["message"] == "query parameter 'limit': Input should be a valid integer, unable to parse " \
                                         "string as an integer"
    invalid_json = dashboard.request("POST", "/api/v2/alerts", body='{"ticker": ')
    assert invalid_json.json()["message"].startswith("request body is not valid JSON")
    wrong = dashboard.request("POST", "/api/v2/alerts", body=rule(direction="up", threshold="x"))
    message = wrong.json()["message"]
    assert "body field 'direction'" in message and "body field 'threshold'" in message
    tree = dashboard.tree(wrong, expect_at_least=4)
    handler = tree.find("## lambda_handler")[0].document
    assert handler["annotations"]["api_error"] == "invalid_request" and handler["annotations"]["http_status"] == 400
    assert not handler.get("fault") and not handler.get("error")  # the client's mistake, not the function's
    assert tree.roots[0].document["error"] is True  # the stage records the 4xx


@pytest.mark.req("FR-018")
@pytest.mark.parametrize(("body", "content_type", "status", "code"), [
    (b"\xff\xfe\x00{", None, 400, "invalid_json"),                 # reaches the function base64-encoded
    (b"\xff" * 17_000, None, 413, "payload_too_large"),
    (json.dumps(VALID_RULE).encode(), "text/plain", 400, "invalid_request"),
    (json.dumps(VALID_RULE).encode(), "application/xml", 400, "invalid_request"),
    (b"ticker=AAPL&direction=above", "application/x-www-form-urlencoded", 400, "invalid_request"),
])
def test_a_body_the_api_cannot_read_is_a_4xx_too(dashboard: Dashboard, body: bytes, content_type: str | None,
                                                 status: int, code: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = dashboard.request("POST", "/api/v2/alerts", body=body, headers=headers)
    assert (response.status, response.json()["error"]) == (status, code), response.body
    assert set(response.json()) == {"error", "message"}
    assert dashboard.alert_rows() == []
