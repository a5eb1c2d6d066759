"""Contract: the devstack's API Gateway stage (edge/api_gateway.py) behind its WAF web ACL.

Each test names the AWS behaviour and cites its source. The function behind the stage is a
recording double; tests/integration/test_dashboard.py runs the real dashboard behind it.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import pytest

from devstack.edge.api_gateway import ApiGateway, GatewayRequest
from devstack.edge.origin_access import OriginAccess
from devstack.lambda_.invocation import SamplingRule
from lib.tracing.header import TraceHeader, new_entity_id

OK = {"statusCode": 200, "headers": {"Content-Type": "application/json"}, "body": "{}"}
ALWAYS = SamplingRule(fixed_rate=1.0, reservoir_per_second=1000)


class Function:
    def __init__(self) -> None:
        self.calls: list[TraceHeader | None] = []

    def __call__(self, key: str, event: Any, upstream: TraceHeader | None = None,
                 upstream_segment_written: bool = False) -> tuple[Any, None]:
        self.calls.append(upstream)
        return OK, None


@pytest.fixture
def daemon() -> Iterator[socket.socket]:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.bind(("127.0.0.1", 0))
        udp.settimeout(1)
        yield udp


def _stage(daemon: socket.socket, function: Function, acl: OriginAccess | None) -> ApiGateway:
    host, port = daemon.getsockname()
    return ApiGateway(function, f"{host}:{port}", sampling_rule=ALWAYS, web_acl=acl)


def _segments(daemon: socket.socket) -> list[dict[str, Any]]:
    documents = []
    try:
        while True:
            documents.append(json.loads(daemon.recv(65536).decode().partition("\n")[2]))
    except TimeoutError:
        return documents


@pytest.mark.req("FR-035")
def test_waf_blocks_a_request_without_the_origin_verify_header_before_the_stage(daemon: socket.socket) -> None:
    """A regional web ACL on the stage inspects the request before API Gateway's other access controls
    (https://docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-control-access-aws-waf.html);
    the default block answer is 403 (https://docs.aws.amazon.com/waf/latest/developerguide/waf-rule-action.html).
    A direct call with Sampled=1 reaches no function and records no segment."""
    function, acl = Function(), OriginAccess("X-Origin-Verify")
    stage = _stage(daemon, function, acl)
    forced = TraceHeader.new_root().with_parent(new_entity_id(), sampled=True)
    for headers in ({"X-Amzn-Trace-Id": forced.format()}, {"X-Origin-Verify": "guess"}):
        response = stage.handle(GatewayRequest("GET", "/api/v2/tickers", headers=headers))
        assert response.status == 403
        assert response.json() == {"message": "Forbidden"}
    assert function.calls == [] and stage.blocked == 2
    assert _segments(daemon) == []
    allowed = stage.handle(GatewayRequest("GET", "/api/v2/tickers", headers=acl.to_api([])))
    assert allowed.status == 200 and len(function.calls) == 1


@pytest.mark.req("FR-035", "FR-018")
@pytest.mark.parametrize("header", ["Root=1-xyz", "garbage;Parent=zz",
                                    "Root=1-6760f3a1-0a1b2c3d4e5f60718293a4b5;Sampled=x"])
def test_an_unreadable_trace_header_starts_a_new_trace_not_an_error(daemon: socket.socket, header: str) -> None:
    """API Gateway adds a trace header to a request that has none
    (https://docs.aws.amazon.com/xray/latest/devguide/xray-services-apigateway.html); one it cannot read is
    treated the same (undocumented: the reading under which the request is served, as it is)."""
    function = Function()
    response = _stage(daemon, function, None).handle(GatewayRequest("GET", "/api/v2/tickers",
                                                                    headers={"X-Amzn-Trace-Id": header}))
    assert response.status == 200
    [upstream] = function.calls
    assert upstream is not None and upstream.root not in header and upstream.sampled is True
    [segment] = _segments(daemon)
    assert segment["trace_id"] == upstream.root and "parent_id" not in segment
