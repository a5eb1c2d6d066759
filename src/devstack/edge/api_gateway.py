"""API Gateway (REST API, Lambda proxy integration, X-Ray enabled stage), emulated for the devstack.

What happens to one HTTP request, in the order AWS does it:

0. The stage's WAF web ACL (`web_acl`): a request without the edge's origin-verify header is
   answered 403 `{"message":"Forbidden"}` before anything else: no stage segment, no integration
   (`devstack.edge.origin_access` cites why).
1. The trace header: the edge's CloudFront Function already removed a client's `Sampled`
   (FR-035); `Root` and `Parent` stay, for linkage. A missing header, or one API Gateway cannot
   read, starts a new trace: API Gateway adds a trace header to a request that has none
   (https://docs.aws.amazon.com/xray/latest/devguide/xray-services-apigateway.html); that an
   unreadable one is treated as none is not documented, and is the only reading under which the
   request is served, as it is.
2. The sampling rule decides (`SamplingRule`, standing in for X-Ray's rules on the stage): a
   client cannot force sampling.
3. The Lambda proxy event (payload 1.0: path, query, headers, body, requestContext) is built and
   the function invoked in the trace, with Parent = the stage segment
   (`upstream_segment_written=True`), so the function's `AWS::Lambda` segment hangs under it.
   The function sees the header API Gateway forwards: `Root=...;Parent=<stage>;Sampled=0|1`.
4. The proxy response becomes the HTTP response. A function error or a malformed proxy response is
   a 502 `{"message": "Internal server error"}`, as API Gateway answers (the function's own
   segments carry the fault). Responses without `x-amzn-trace-id` get one (`Root=...`).
5. When sampled, the stage segment (`origin: AWS::ApiGateway::Stage`, name `<api>/<stage>`,
   http request and response, `aws.api_gateway`) goes to the X-Ray daemon. Its `parent_id` is the
   client's `Parent` when one was sent, as API Gateway links it: a browser writes no segment of
   its own, so in X-Ray that parent is the client, and the stage segment is the trace's root.

Example (not run: needs the dashboard function behind it):
    >>> gateway = ApiGateway(invoke, daemon.address, sampling_rule=SamplingRule())            # doctest: +SKIP
    >>> response = gateway.handle(GatewayRequest("GET", "/api/v2/health",
    ...                           headers={"X-Amzn-Trace-Id": "Root=1-...;Parent=..."}))     # doctest: +SKIP
    >>> response.status, response.header("x-amzn-trace-id")                                   # doctest: +SKIP
    (200, 'Root=1-...')
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import socket
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote

from devstack.aws.moto_server import REGION
from devstack.aws.sns_delivery import Invoke
from devstack.edge.cognito_authorizer import UNAUTHORIZED_BODY, CognitoAuthorizer, guards
from devstack.edge.origin_access import WAF_FORBIDDEN_BODY, OriginAccess
from devstack.lambda_.invocation import ACCOUNT_ID, UDP_HEADER, SamplingRule
from devstack.stack import LOCAL_ENVIRONMENT, physical_name
from lib.tracing.bounds import truncate_message
from lib.tracing.header import InvalidTraceHeaderError, TraceHeader, new_entity_id

log = logging.getLogger("devstack.edge.api_gateway")

TRACE_HEADER = "X-Amzn-Trace-Id"
INTERNAL_ERROR_BODY = b'{"message": "Internal server error"}'
MAX_USER_AGENT_CHARS = 256


@dataclass(frozen=True)
class GatewayRequest:
    """One HTTP request as it reaches API Gateway. `query` is the raw query string (no `?`)."""

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] | Sequence[tuple[str, str]] = ()
    body: bytes = b""
    source_ip: str = "127.0.0.1"

    def header_items(self) -> list[tuple[str, str]]:
        items = self.headers.items() if isinstance(self.headers, Mapping) else self.headers
        return [(str(name), str(value)) for name, value in items]

    def header(self, name: str) -> str | None:
        """The last value of a header, case-insensitively."""
        found = [value for key, value in self.header_items() if key.lower() == name.lower()]
        return found[-1] if found else None


@dataclass
class GatewayResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    trace_header: TraceHeader | None  # the one the function received (Root, Parent = stage segment, Sampled)
    stage_segment_id: str | None  # None: the web ACL blocked the request before the stage
    error: BaseException | None = field(default=None, repr=False)  # the function's, for a 502

    def header(self, name: str) -> str | None:
        found = [value for key, value in self.headers if key.lower() == name.lower()]
        return found[-1] if found else None

    def json(self) -> Any:
        return json.loads(self.body)


class MalformedProxyResponseError(ValueError):
    """The function returned something that is not a Lambda proxy response."""


def stage_trace_header(raw: str | None) -> TraceHeader:
    """The incoming header's Root and Parent as the stage reads them; a new root when absent or unreadable.
    The decision is never taken from it: the stage's sampling rule decides (ApiGateway.handle)."""
    if raw:
        try:
            parsed = TraceHeader.parse(raw)
            return TraceHeader(root=parsed.root, parent=parsed.parent)
        except InvalidTraceHeaderError as error:
            log.info("ignoring unreadable %s: %s", TRACE_HEADER, error)
    return TraceHeader.new_root()


class ApiGateway:
    """One REST API stage whose every route is a Lambda proxy integration of `function_key`."""

    def __init__(
        self,
        invoke: Invoke,
        daemon_address: str,
        function_key: str = "dashboard",
        sampling_rule: SamplingRule | None = None,
        api_name: str | None = None,
        stage: str = LOCAL_ENVIRONMENT,
        api_id: str = "local0api1",
        web_acl: OriginAccess | None = None,
        authorizer: CognitoAuthorizer | None = None,
    ):
        self.authorizer = authorizer  # the alert routes' Cognito authorizer (None: every route public)
        self._invoke = invoke
        self.web_acl = web_acl
        self.blocked = 0  # requests the web ACL refused
        host, _, port = daemon_address.partition(":")
        self._daemon = (host, int(port))
        self.function_key = function_key
        self.sampling_rule = sampling_rule or SamplingRule()
        self.api_name = api_name or physical_name("api")
        self.stage = stage
        self.api_id = api_id
        self.domain = f"{api_id}.execute-api.{REGION}.amazonaws.com"

    @property
    def segment_name(self) -> str:
        return f"{self.api_name}/{self.stage}"

    def handle(self, request: GatewayRequest) -> GatewayResponse:
        if self.web_acl is not None and not self.web_acl.api_allows(request.header_items()):
            self.blocked += 1
            return GatewayResponse(403, [("Content-Type", "application/json")], WAF_FORBIDDEN_BODY, None, None)
        start = time.time()
        client = stage_trace_header(request.header(TRACE_HEADER))
        stage_id = new_entity_id()
        forwarded = TraceHeader(root=client.root, parent=stage_id, sampled=self.sampling_rule.decide())
        request_id = str(uuid.uuid4())
        event = self.proxy_event(request, forwarded, request_id, start)
        error: BaseException | None = None
        claims: dict[str, str] | None = None
        guarded = self.authorizer is not None and guards(request.method, unquote(request.path))
        if guarded and self.authorizer is not None:
            claims = self.authorizer.claims(request.header("Authorization"))
            event["requestContext"]["authorizer"] = {"claims": claims}
        try:
            if guarded and claims is None:  # the UNAUTHORIZED gateway response: the function is not invoked
                status, headers, body = 401, [("Content-Type", "application/json"),
                                              ("Access-Control-Allow-Origin", "*")], UNAUTHORIZED_BODY
            else:
                result, _ = self._invoke(self.function_key, event, upstream=forwarded, upstream_segment_written=True)
                status, headers, body = proxy_response(result)
        # What API Gateway does with a failed integration: a 502 (the function's segments carry the fault).
        except Exception as failure:
            log.warning("integration failed: %s: %s", type(failure).__name__, truncate_message(str(failure), 300))
            error = failure
            status, headers, body = 502, [("Content-Type", "application/json")], INTERNAL_ERROR_BODY
        if not any(name.lower() == TRACE_HEADER.lower() for name, _ in headers):
            headers.append((TRACE_HEADER, TraceHeader(root=forwarded.root).format()))
        headers.append(("x-amzn-RequestId", request_id))
        if forwarded.sampled:
            self._write_stage_segment(request, client, forwarded, stage_id, request_id, start, status, len(body))
        return GatewayResponse(status, headers, body, forwarded, stage_id, error)

    def proxy_event(self, request: GatewayRequest, forwarded: TraceHeader, request_id: str,
                    received_at: float) -> dict[str, Any]:
        """The Lambda proxy integration's event (payload format 1.0) for `request`."""
        path = unquote(request.path)
        headers = [(name, value) for name, value in request.header_items() if name.lower() != TRACE_HEADER.lower()]
        headers.append((TRACE_HEADER, forwarded.format()))
        multi_headers: dict[str, list[str]] = {}
        for name, value in headers:
            multi_headers.setdefault(name, []).append(value)
        multi_query: dict[str, list[str]] = {}
        for name, value in parse_qsl(request.query, keep_blank_values=True):
            multi_query.setdefault(name, []).append(value)
        body: str | None = None
        is_base64 = False
        if request.body:
            try:
                body = request.body.decode()
            except UnicodeDecodeError:
                body, is_base64 = base64.b64encode(request.body).decode(), True
        stamp = dt.datetime.fromtimestamp(received_at, dt.UTC)
        return {
            "resource": "/{proxy+}",
            "path": path,
            "httpMethod": request.method.upper(),
            "headers": {name: values[-1] for name, values in multi_headers.items()},
            "multiValueHeaders": multi_headers,
            "queryStringParameters": {name: values[-1] for name, values in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "pathParameters": {"proxy": path.lstrip("/")},
            "stageVariables": None,
            "requestContext": {
                "accountId": ACCOUNT_ID, "apiId": self.api_id, "stage": self.stage, "requestId": request_id,
                "extendedRequestId": request_id, "resourceId": "proxy0", "resourcePath": "/{proxy+}",
                "httpMethod": request.method.upper(), "path": f"/{self.stage}{path}", "protocol": "HTTP/1.1",
                "domainName": self.domain, "domainPrefix": self.api_id,
                "requestTime": stamp.strftime("%d/%b/%Y:%H:%M:%S +0000"), "requestTimeEpoch": int(received_at * 1000),
                "identity": {"sourceIp": request.source_ip, "userAgent": request.header("User-Agent")},
            },
            "body": body,
            "isBase64Encoded": is_base64,
        }

    def _write_stage_segment(self, request: GatewayRequest, client: TraceHeader, forwarded: TraceHeader,
                             stage_id: str, request_id: str, start: float, status: int, length: int) -> None:
        document: dict[str, Any] = {
            "name": self.segment_name,
            "origin": "AWS::ApiGateway::Stage",
            "id": stage_id,
            "trace_id": forwarded.root,
            "start_time": start,
            "end_time": time.time(),
            "http": {
                "request": {
                    "url": truncate_message(f"https://{self.domain}/{self.stage}{unquote(request.path)}", 1000),
                    "method": request.method.upper(),
                    "client_ip": request.source_ip,
                    "user_agent": truncate_message(request.header("User-Agent") or "", MAX_USER_AGENT_CHARS),
                },
                "response": {"status": status, "content_length": length},
            },
            "aws": {"api_gateway": {"account_id": ACCOUNT_ID, "rest_api_id": self.api_id, "stage": self.stage,
                                    "request_id": request_id}},
        }
        if client.parent is not None:
            document["parent_id"] = client.parent
        if status >= 500:
            document["fault"] = True
        elif status >= 400:
            document["error"] = True
            if status == 429:
                document["throttle"] = True
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto((UDP_HEADER + json.dumps(document)).encode(), self._daemon)


def proxy_response(result: Any) -> tuple[int, list[tuple[str, str]], bytes]:
    """Status, headers and body of a Lambda proxy response; MalformedProxyResponseError otherwise."""
    if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
        raise MalformedProxyResponseError("the function's result has no integer statusCode")
    headers: list[tuple[str, str]] = []
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, dict) or not isinstance(multi, dict):
        raise MalformedProxyResponseError("headers / multiValueHeaders must be objects")
    for name, values in multi.items():
        if not isinstance(values, list):
            raise MalformedProxyResponseError(f"multiValueHeaders[{name!r}] must be a list")
        headers.extend((str(name), str(value)) for value in values)
    multi_names = {name.lower() for name in multi}
    headers.extend((str(name), str(value)) for name, value in single.items() if name.lower() not in multi_names)
    raw = result.get("body")
    if raw is None:
        body = b""
    elif isinstance(raw, str):
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else raw.encode()
    else:
        raise MalformedProxyResponseError("body must be a string")
    return int(result["statusCode"]), headers, body
