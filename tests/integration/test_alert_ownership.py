"""Alert rules belong to a signed-in user (issue 21): the emulated API Gateway checks moto's Cognito ID
tokens as the COGNITO_USER_POOLS authorizer does, the dashboard reads the caller from the claims.

A user lists, creates and deletes only their own rules (another user's rule is 404, not 403); the rule
mails the user's verified address, never one the request names; an unverified user gets nothing;
the per-user cap holds under a burst (429, Retry-After, nothing written); no address reaches anyone
but its owner, nor any trace document.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest

from devstack.aws.moto_server import MotoServer
from devstack.aws.resources import Resources
from devstack.edge.api_gateway import ApiGateway, GatewayRequest, GatewayResponse
from devstack.edge.cognito_authorizer import CognitoAuthorizer
from devstack.seed import SeededAuth, add_user, create_user_pool
from devstack.xray.pipeline import TracePipeline
from lib.alerts import MAX_RULES_PER_OWNER, AlertTable, Direction, RuleLimitError
from lib.tables import dynamodb
from lib.tracing.header import TraceHeader, new_entity_id
from tests.fixtures.serialized_aws import serialized_dynamodb

ANN = ("ann@example.com", "Ann-pass-12345")
BOB = ("bob@example.com", "Bob-pass-12345")
CARL = ("carl@example.com", "Carl-pass-12345")  # never verified his address
RULE = {"ticker": "AAPL", "direction": "above", "threshold": 0.4}


def id_token(auth: SeededAuth, email: str, password: str) -> str:
    result = boto3.client("cognito-idp").initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH", ClientId=auth.client_id,
        AuthParameters={"USERNAME": email, "PASSWORD": password})["AuthenticationResult"]
    return str(result["IdToken"])


class Api:
    """Requests through the emulated stage, as a given user (or nobody)."""

    def __init__(self, invoke: Any, pipeline: TracePipeline, resources: Resources, moto: MotoServer):
        self.auth = create_user_pool(f"test-users-{uuid.uuid4().hex[:8]}", dict([ANN, BOB]))
        add_user(self.auth.user_pool_id, *CARL, verified=False)
        jwks = f"{moto.endpoint}/{self.auth.user_pool_id}/.well-known/jwks.json"
        self.gateway = ApiGateway(invoke, pipeline.daemon.address,
                                  authorizer=CognitoAuthorizer(self.auth.user_pool_id, jwks_url=jwks))
        self.tokens = {email: id_token(self.auth, email, password) for email, password in (ANN, BOB, CARL)}
        self.config = dynamodb().Table(resources.tables["config"])
        self.responses: list[GatewayResponse] = []

    def call(self, method: str, path: str, user: str | None, body: dict[str, Any] | None = None,
             token: str | None = None) -> GatewayResponse:
        headers = {"X-Amzn-Trace-Id": TraceHeader.new_root().with_parent(new_entity_id(), sampled=None).format()}
        if user is not None or token is not None:
            headers["Authorization"] = token or self.tokens[str(user)]
        if body is not None:
            headers["Content-Type"] = "application/json"
        response = self.gateway.handle(GatewayRequest(method, path, "", headers,
                                                      json.dumps(body).encode() if body is not None else b""))
        self.responses.append(response)
        return response

    def track(self) -> None:
        self.config.put_item(Item={"pk": "ticker", "sk": "AAPL", "name": "Apple Inc."})

    def clear(self) -> None:
        for row in self.config.scan(ConsistentRead=True)["Items"]:
            if row["pk"] in ("alert", "alert-owner"):
                self.config.delete_item(Key={"pk": row["pk"], "sk": row["sk"]})


@pytest.fixture
def api(invoke: Any, trace_pipeline: TracePipeline, stack_resources: Resources,
        moto_server: MotoServer) -> Iterator[Api]:
    harness = Api(invoke, trace_pipeline, stack_resources, moto_server)
    harness.clear()
    harness.track()
    yield harness
    harness.clear()


def tampered(token: str) -> str:
    """The same token with one claim changed: its signature no longer matches."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).decode().rstrip("=")
    return f"{header}.{forged}.{signature}"


@pytest.mark.req("FR-018")
def test_the_alert_routes_answer_401_without_a_valid_id_token_and_reading_sentiment_stays_public(api: Api) -> None:
    access_token = boto3.client("cognito-idp").initiate_auth(
        AuthFlow="USER_PASSWORD_AUTH", ClientId=api.auth.client_id,
        AuthParameters={"USERNAME": ANN[0], "PASSWORD": ANN[1]})["AuthenticationResult"]["AccessToken"]
    for token in (None, "not-a-jwt", tampered(api.tokens[ANN[0]]), access_token):
        for method, path, body in (("GET", "/api/v2/alerts", None), ("POST", "/api/v2/alerts", RULE),
                                   ("DELETE", f"/api/v2/alerts/{'0' * 32}", None)):
            response = api.call(method, path, None, body, token=token)
            assert response.status == 401, (method, token and token[:20], response.body)
            assert response.json() == {"message": "Unauthorized"}  # API Gateway's UNAUTHORIZED response
    assert api.config.scan(ConsistentRead=True, FilterExpression="pk = :a",
                           ExpressionAttributeValues={":a": "alert"})["Items"] == []
    assert api.call("GET", "/api/v2/tickers", None).status == 200
    assert api.call("OPTIONS", "/api/v2/alerts", None).status != 401  # the CORS preflight carries no token


@pytest.mark.req("FR-018")
def test_a_user_sees_and_deletes_only_their_own_rules_and_another_users_rule_is_404(api: Api) -> None:
    created = api.call("POST", "/api/v2/alerts", ANN[0], RULE)
    assert created.status == 201, created.body
    rule = created.json()
    assert rule["email"] == ANN[0]  # the verified address of the token, not one the request names
    assert api.call("GET", "/api/v2/alerts", BOB[0]).json() == {"alerts": []}
    stolen = api.call("DELETE", f"/api/v2/alerts/{rule['alert_id']}", BOB[0])
    assert stolen.status == 404 and stolen.json()["error"] == "alert_not_found"
    missing = api.call("DELETE", f"/api/v2/alerts/{'0' * 32}", BOB[0])
    assert missing.json() == stolen.json() | {"message": missing.json()["message"]}  # indistinguishable
    listed = api.call("GET", "/api/v2/alerts", ANN[0]).json()["alerts"]
    assert [entry["alert_id"] for entry in listed] == [rule["alert_id"]]
    assert api.call("DELETE", f"/api/v2/alerts/{rule['alert_id']}", ANN[0]).status == 204
    assert api.call("GET", "/api/v2/alerts", ANN[0]).json() == {"alerts": []}


@pytest.mark.req("FR-018")
def test_a_rule_is_created_listed_and_deleted_by_its_owner_and_the_stream_token_is_stored_only_hashed(
        api: Api) -> None:
    created = api.call("POST", "/api/v2/alerts", ANN[0], RULE)
    assert created.status == 201, created.body
    body = created.json()
    token = body.pop("stream_token")
    assert len(token) >= 40
    assert body == {"alert_id": body["alert_id"], **RULE, "email": ANN[0]}
    assert created.header("Location") == f"/api/v2/alerts/{body['alert_id']}"
    row = api.config.get_item(Key={"pk": "alert", "sk": body["alert_id"]}, ConsistentRead=True)["Item"]
    assert row["stream_token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    assert row["owner"] == api.auth.sub and token not in json.dumps(row, default=str)
    alerts = AlertTable(api.config.name)
    assert alerts.stream_token_matches(body["alert_id"], token) is True
    assert alerts.stream_token_matches(body["alert_id"], token + "x") is False
    assert alerts.stream_token_matches("0" * 32, token) is None
    assert api.call("GET", "/api/v2/alerts", ANN[0]).json() == {"alerts": [body]}  # never the token nor its hash
    deleted = api.call("DELETE", f"/api/v2/alerts/{body['alert_id']}", ANN[0])
    assert deleted.status == 204 and deleted.body == b""
    again = api.call("DELETE", f"/api/v2/alerts/{body['alert_id']}", ANN[0])
    assert again.status == 404 and again.json()["error"] == "alert_not_found"


@pytest.mark.req("FR-018")
def test_a_rule_cannot_name_an_address_and_an_unverified_user_creates_nothing(api: Api) -> None:
    named = api.call("POST", "/api/v2/alerts", ANN[0], {**RULE, "email": "victim@example.org"})
    assert named.status == 400 and "email" in named.json()["message"]
    unverified = api.call("POST", "/api/v2/alerts", CARL[0], RULE)
    assert unverified.status == 403 and unverified.json()["error"] == "email_not_verified"
    assert api.config.scan(ConsistentRead=True, FilterExpression="pk = :a",
                           ExpressionAttributeValues={":a": "alert"})["Items"] == []


@pytest.mark.req("FR-018")
def test_the_per_user_rule_cap_answers_429_with_retry_after_and_writes_nothing(api: Api) -> None:
    for _ in range(MAX_RULES_PER_OWNER):
        assert api.call("POST", "/api/v2/alerts", ANN[0], RULE).status == 201
    over = api.call("POST", "/api/v2/alerts", ANN[0], RULE)
    assert over.status == 429 and over.json()["error"] == "rule_limit"
    assert int(over.header("Retry-After") or "0") > 0
    assert len(api.call("GET", "/api/v2/alerts", ANN[0]).json()["alerts"]) == MAX_RULES_PER_OWNER
    assert api.call("POST", "/api/v2/alerts", BOB[0], RULE).status == 201  # the cap is per user
    first = api.call("GET", "/api/v2/alerts", ANN[0]).json()["alerts"][0]["alert_id"]
    assert api.call("DELETE", f"/api/v2/alerts/{first}", ANN[0]).status == 204
    assert api.call("POST", "/api/v2/alerts", ANN[0], RULE).status == 201  # a freed slot is usable


@pytest.mark.req("FR-018")
def test_the_rule_cap_holds_under_a_burst_of_concurrent_creates(moto_server: MotoServer) -> None:
    with serialized_dynamodb() as resources:  # DynamoDB's transaction isolation (see the fixture)
        burst_of_creates(AlertTable(resources.tables["config"]))


def burst_of_creates(table: AlertTable) -> None:
    owner = f"burst-{uuid.uuid4().hex}"

    def create(_: int) -> str:
        try:
            table.create(owner, "AAPL", Direction.ABOVE, 0.1, "burst@example.com", dt.datetime.now(dt.UTC))
        except RuleLimitError:
            return "limited"
        return "created"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(create, range(3 * MAX_RULES_PER_OWNER)))
    assert outcomes.count("created") == MAX_RULES_PER_OWNER
    assert len(table.owned_by(owner)) == MAX_RULES_PER_OWNER
    for rule in table.owned_by(owner):
        assert table.delete(owner, rule.alert_id)


@pytest.mark.req("SC-011")
def test_no_address_reaches_anyone_but_its_owner_nor_any_trace_document(api: Api,
                                                                       trace_pipeline: TracePipeline) -> None:
    created = api.call("POST", "/api/v2/alerts", ANN[0], RULE).json()
    api.call("GET", "/api/v2/alerts", ANN[0])
    others = [api.call("GET", "/api/v2/alerts", BOB[0]), api.call("GET", "/api/v2/alerts", None),
              api.call("DELETE", f"/api/v2/alerts/{created['alert_id']}", BOB[0]),
              api.call("POST", "/api/v2/alerts", None, RULE)]
    for response in others:
        assert ANN[0].encode() not in response.body and all(ANN[0] not in v for _, v in response.headers)
    api.call("DELETE", f"/api/v2/alerts/{created['alert_id']}", ANN[0])
    documents = [json.dumps(doc) for response in api.responses
                 for doc in trace_pipeline.documents(response.trace_header.root)]
    assert documents, "the requests were traced"
    recorded = trace_pipeline.record_path.read_text()  # the stack's segments.jsonl: every document of the session
    for address in (ANN[0], BOB[0], CARL[0]):
        assert not [doc for doc in documents if address in doc], f"{address} in a trace document"
        assert address not in recorded
