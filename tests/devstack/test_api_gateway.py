"""The API Gateway emulation without AWS: the proxy event, the proxy response, the edge rule, the stage
segment it writes (read from a UDP socket standing in for the daemon), and 502 for a failed integration."""

from __future__ import annotations

import base64
import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.edge.api_gateway import ApiGateway, GatewayRequest, MalformedProxyResponseError, proxy_response
from devstack.lambda_.invocation import SamplingRule
from lib.tracing.header import TraceHeader, new_entity_id

OK = {"statusCode": 200, "multiValueHeaders": {"Content-Type": ["application/json"]}, "body": '{"ok":true}',
      "isBase64Encoded": False}


class FakeFunction:
    """Records what the gateway invoked it with; answers `result` or raises it."""

    def __init__(self, result: Any = OK):
        self.result = result
        self.calls: list[dict[str, Any]] = []

    def __call__(self, key: str, event: Any, upstream: TraceHeader | None = None,
                 upstream_segment_written: bool = False) -> tuple[Any, None]:
        self.calls.append({"key": key, "event": event, "upstream": upstream, "written": upstream_segment_written})
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result, None


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(2)
        yield udp


def address(udp: socket.socket) -> str:
    host, port = udp.getsockname()
    return f"{host}:{port}"


def stage_document(udp: socket.socket) -> dict[str, Any]:
    header, _, body = udp.recv(65536).decode().partition("\n")
    assert json.loads(header) == {"format": "json", "version": 1}
    document: dict[str, Any] = json.loads(body)
    return document


@pytest.mark.req("FR-035", "SC-001")
def test_the_function_gets_a_proxy_event_in_the_trace_with_the_stage_as_parent(daemon: socket.socket) -> None:
    function = FakeFunction()
    gateway = ApiGateway(function, address(daemon))
    client = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
    request = GatewayRequest("GET", "/api/v2/items", "ticker=AAPL&tag=a&tag=b&empty=",
                             [("X-Amzn-Trace-Id", client.format()), ("User-Agent", "test-browser"),
                              ("Accept", "text/html"), ("Accept", "application/json")])
    response = gateway.handle(request)

    [call] = function.calls
    assert call["key"] == "dashboard" and call["written"] is True
    upstream: TraceHeader = call["upstream"]
    assert upstream.root == client.root and upstream.parent == response.stage_segment_id and upstream.sampled
    event = call["event"]
    assert event["httpMethod"] == "GET" and event["path"] == "/api/v2/items"
    assert event["queryStringParameters"] == {"ticker": "AAPL", "tag": "b", "empty": ""}
    assert event["multiValueQueryStringParameters"] == {"ticker": ["AAPL"], "tag": ["a", "b"], "empty": [""]}
    assert event["multiValueHeaders"]["Accept"] == ["text/html", "application/json"]
    assert event["headers"]["X-Amzn-Trace-Id"] == upstream.format()  # what API Gateway forwards
    assert event["body"] is None and event["isBase64Encoded"] is False
    assert event["requestContext"]["identity"]["userAgent"] == "test-browser"

    document = stage_document(daemon)
    assert document["origin"] == "AWS::ApiGateway::Stage" and document["name"] == gateway.segment_name
    assert document["id"] == response.stage_segment_id and document["trace_id"] == client.root
    assert document["parent_id"] == client.parent
    assert document["http"]["response"] == {"status": 200, "content_length": len(b'{"ok":true}')}
    assert document["http"]["request"]["method"] == "GET"
    assert not document.get("fault") and not document.get("error")
    assert response.status == 200 and response.json() == {"ok": True}
    assert response.header("x-amzn-trace-id") == f"Root={client.root}"


@pytest.mark.req("FR-035")
def test_an_unsampled_request_writes_no_stage_segment(daemon: socket.socket) -> None:
    function = FakeFunction()
    gateway = ApiGateway(function, address(daemon), sampling_rule=SamplingRule(0, 0))
    forced = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
    gateway.handle(GatewayRequest("GET", "/api/v2/health", headers={"X-Amzn-Trace-Id": forced.format()}))

    assert function.calls[0]["upstream"].sampled is False
    assert function.calls[0]["event"]["headers"]["X-Amzn-Trace-Id"].endswith(";Sampled=0")
    daemon.settimeout(0.2)
    with pytest.raises(TimeoutError):
        daemon.recv(65536)


@pytest.mark.parametrize("header", [None, "", "garbage", "Root=1-xyz;Parent=abc", "Root=" + "1" * 300])
def test_a_missing_or_malformed_trace_header_starts_a_new_trace(daemon: socket.socket, header: str | None) -> None:
    function = FakeFunction()
    headers = {} if header is None else {"X-Amzn-Trace-Id": header}
    response = ApiGateway(function, address(daemon)).handle(GatewayRequest("GET", "/api/v2/health", headers=headers))
    assert response.status == 200
    assert response.trace_header.root.startswith("1-") and "parent_id" not in stage_document(daemon)


def test_a_binary_body_is_passed_base64_encoded(daemon: socket.socket) -> None:
    function = FakeFunction()
    ApiGateway(function, address(daemon)).handle(GatewayRequest("POST", "/api/v2/alerts", body=b"\xff\xfe\x00"))
    event = function.calls[0]["event"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == b"\xff\xfe\x00"


@pytest.mark.req("FR-005")
@pytest.mark.parametrize("result", [RuntimeError("boom"), {"body": "no status"}, "not a dict",
                                    {"statusCode": 200, "multiValueHeaders": {"A": "not a list"}},
                                    {"statusCode": 200, "body": {"not": "a string"}}])
def test_a_failed_integration_is_a_502_and_a_fault_on_the_stage(daemon: socket.socket, result: Any) -> None:
    response = ApiGateway(FakeFunction(result), address(daemon)).handle(GatewayRequest("GET", "/api/v2/tickers"))
    assert response.status == 502 and response.json() == {"message": "Internal server error"}
    assert response.error is not None
    document = stage_document(daemon)
    assert document["fault"] is True and document["http"]["response"]["status"] == 502


def test_client_errors_mark_the_stage_error_and_429_throttle(daemon: socket.socket) -> None:
    gateway = ApiGateway(FakeFunction({"statusCode": 429, "body": ""}), address(daemon))
    gateway.handle(GatewayRequest("GET", "/api/v2/tickers"))
    document = stage_document(daemon)
    assert document["error"] is True and document["throttle"] is True and not document.get("fault")


def test_proxy_response_merges_single_and_multi_value_headers() -> None:
    status, headers, body = proxy_response({
        "statusCode": 201, "headers": {"Location": "/x", "Content-Type": "ignored"},
        "multiValueHeaders": {"Content-Type": ["application/json"], "Set-Cookie": ["a=1", "b=2"]},
        "body": base64.b64encode(b"raw").decode(), "isBase64Encoded": True})
    assert status == 201 and body == b"raw"
    assert sorted(headers) == [("Content-Type", "application/json"), ("Location", "/x"), ("Set-Cookie", "a=1"),
                               ("Set-Cookie", "b=2")]
    with pytest.raises(MalformedProxyResponseError):
        proxy_response({"statusCode": "200"})
