"""Contract: the devstack edge does what CloudFront does in front of the two origins.

Each test names the AWS behaviour it holds the edge to and cites where AWS documents it. The origins
here are recording doubles of the edge's two backend protocols; tests/contract/test_api_gateway.py
and the Function URL tests hold the origins to their own side.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from devstack.edge.cloudfront import (
    API_METHODS,
    DEFAULT_METHODS,
    STREAM_METHODS,
    BufferedReply,
    CloudFrontEdge,
    EdgeRequest,
    EdgeResponse,
)
from devstack.edge.cloudfront_function import STRIP_SAMPLING_JS, CloudFrontFunction
from devstack.edge.origin_access import OriginAccess
from tests.infra.hcl import module

ROOT = "1-6760f3a1-0a1b2c3d4e5f60718293a4b5"
PARENT = "53995c3f42cd8ad8"


class Origins:
    """Both origins at once: records what reached them."""

    def __init__(self) -> None:
        self.api: list[EdgeRequest] = []
        self.stream: list[EdgeRequest] = []
        self.stream_headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]

    def handle(self, request: EdgeRequest) -> EdgeResponse:
        self.api.append(request)
        return EdgeResponse(200, [("Content-Type", "application/json")], b"{}")

    def open(self, request: EdgeRequest) -> BufferedReply:
        self.stream.append(request)
        return BufferedReply(200, list(self.stream_headers), b"retry: 3000\n\n")


@pytest.fixture
def origins() -> Origins:
    return Origins()


@pytest.fixture
def edge(origins: Origins) -> Iterator[CloudFrontEdge]:
    server = CloudFrontEdge(origins, origins, None, port=0).start()
    yield server
    server.stop()


def _trace_headers(request: EdgeRequest) -> list[str]:
    return [value for key, value in request.headers if key.lower() == "x-amzn-trace-id"]


@pytest.mark.req("FR-035")
def test_viewer_request_function_is_the_deployed_file_run_by_node(origins: Origins, tmp_path: Path) -> None:
    """CloudFront runs the function Terraform deploys on every request of the behaviour
    (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-functions.html): the
    edge runs whatever JS file it is given, so a changed function changes what the origin receives."""
    changed = tmp_path / "changed.js"
    changed.write_text(STRIP_SAMPLING_JS.read_text().replace("return request;\n}",
                                                             "request.headers['x-changed'] = {value: 'yes'};\n"
                                                             "    return request;\n}"))
    server = CloudFrontEdge(origins, origins, None, port=0, function=CloudFrontFunction(changed)).start()
    try:
        requests.get(f"{server.url}/api/v2/health", headers={"X-Amzn-Trace-Id": f"Root={ROOT};Sampled=1"},
                     timeout=5)
    finally:
        server.stop()
    [seen] = origins.api
    assert ("x-changed", "yes") in seen.headers
    assert _trace_headers(seen) == [f"Root={ROOT}"]


@pytest.mark.req("FR-035")
@pytest.mark.parametrize("path", ["/api/v2/health", "/api/v2/stream"])
def test_viewer_request_function_removes_sampled_and_keeps_the_rest(edge: CloudFrontEdge, origins: Origins,
                                                                     path: str) -> None:
    """strip_sampling.js's contract on both API routes (CloudFront Functions event structure:
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html)."""
    requests.get(f"{edge.url}{path}", headers={"X-Amzn-Trace-Id": f"Root={ROOT};Parent={PARENT};Sampled=1"},
                 timeout=5)
    [seen] = origins.api + origins.stream
    assert _trace_headers(seen) == [f"Root={ROOT};Parent={PARENT}"]
    assert seen.upstream is not None and seen.upstream.sampled is None


@pytest.mark.req("FR-035", "FR-018")
@pytest.mark.parametrize("header", ["Root=1-xyz;Sampled=1", "garbage", "Parent=zz;Sampled=1;Root=" + ROOT[:-2]])
def test_malformed_trace_header_passes_the_edge_never_a_400(edge: CloudFrontEdge, origins: Origins,
                                                            header: str) -> None:
    """CloudFront does not validate X-Amzn-Trace-Id; the function forwards it without `Sampled`, and the
    origin, which cannot read it, starts a new trace (api_gateway.stage_trace_header)."""
    response = requests.get(f"{edge.url}/api/v2/health", headers={"X-Amzn-Trace-Id": header}, timeout=5)
    assert response.status_code == 200
    [seen] = origins.api
    assert all("sampled" not in value.lower() for value in _trace_headers(seen))


@pytest.mark.req("FR-035")
@pytest.mark.parametrize(("method", "path"), [("TRACE", "/api/v2/health"), ("PROPFIND", "/api/v2/health"),
                                              ("POST", "/api/v2/stream"), ("DELETE", "/index.html")])
def test_a_method_the_cache_behaviour_does_not_allow_is_a_403_from_cloudfront(
        edge: CloudFrontEdge, origins: Origins, method: str, path: str) -> None:
    """https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-403-invalid-method.html:
    CloudFront answers 403 to a method the behaviour's allowed methods lack; no origin sees it."""
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=5)
    connection.request(method, path)
    response = connection.getresponse()
    assert response.status == 403
    assert response.getheader("X-Cache") == "Error from cloudfront"
    connection.close()
    assert origins.api == [] and origins.stream == []


@pytest.mark.req("FR-035")
def test_allowed_methods_are_the_distributions() -> None:
    """The edge's method sets are cloudfront.tf's `allowed_methods` (default behaviour and the ordered ones)."""
    edge_module = module("edge")
    behaviours = {item["path"]: frozenset(item["methods"]) for item in edge_module.locals["dynamic_behaviors"]}
    assert behaviours["/api/v2/stream*"] == STREAM_METHODS
    assert behaviours["/api/v2/configurations/*/stream"] == STREAM_METHODS
    assert behaviours["/api/v2/*"] == API_METHODS
    distribution = edge_module.resources[("aws_cloudfront_distribution", "edge")]
    assert frozenset(distribution["default_cache_behavior"][0]["allowed_methods"]) == DEFAULT_METHODS


@pytest.mark.req("FR-035")
def test_api_origin_gets_the_origin_custom_header_in_place_of_a_clients_copy(edge: CloudFrontEdge,
                                                                            origins: Origins) -> None:
    """Origin custom headers (cloudfront.tf `custom_header`): CloudFront adds them to every origin request
    and a viewer's header of the same name does not survive:
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/add-origin-custom-headers.html"""
    name = edge.origin_access.header_name
    requests.get(f"{edge.url}/api/v2/health", headers={name: "guessed"}, timeout=5)
    [seen] = origins.api
    assert [v for k, v in seen.headers if k.lower() == name.lower()] == [edge.origin_access.secret]
    assert edge.origin_access.api_allows(seen.headers)


@pytest.mark.req("FR-035")
def test_function_url_origin_gets_a_sigv4_signature_in_place_of_the_viewers_authorization(
        edge: CloudFrontEdge, origins: Origins) -> None:
    """Origin access control for Lambda with signing_behavior "always" signs every origin request, replacing a
    viewer's Authorization:
    https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-lambda.html"""
    requests.get(f"{edge.url}/api/v2/stream?x=1", headers={"Authorization": "Bearer abc"}, timeout=5)
    [seen] = origins.stream
    [authorization] = [v for k, v in seen.headers if k.lower() == "authorization"]
    assert authorization.startswith("AWS4-HMAC-SHA256 ")
    assert edge.origin_access.function_url_allows(seen.method, seen.path, seen.query, seen.headers)
    assert not OriginAccess("X-Origin-Verify").function_url_allows(seen.method, seen.path, "x=2", seen.headers)


@pytest.mark.req("FR-082")
def test_a_relayed_stream_sends_each_header_once(edge: CloudFrontEdge, origins: Origins) -> None:
    """CloudFront forwards the origin's response headers; the edge adds none twice (issue 15 point 7:
    Cache-Control was sent twice)."""
    connection = http.client.HTTPConnection("127.0.0.1", edge.port, timeout=5)
    connection.request("GET", "/api/v2/stream", headers={"Origin": "http://localhost:5173"})
    response = connection.getresponse()
    names = [name.lower() for name, _ in response.getheaders()]
    response.read()
    connection.close()
    assert response.status == 200
    assert names.count("cache-control") == 1
    assert len(names) == len(set(names)), names
