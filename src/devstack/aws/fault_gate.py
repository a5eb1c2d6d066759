"""Faults at the AWS boundary for the local stack: moto's server behind a gate that can refuse calls.

The Lambdas of the local stack run in their own processes, so a botocore hook in the devstack's
process cannot reach their clients. The gate sits where AWS sits instead: every request to moto
passes through it, and an armed `FaultRule` answers a matching request with a real AWS error
response (the protocol's own error shape, so botocore raises its modelled exception). Rules can be
scoped to one trace id (the X-Ray SDK puts `X-Amzn-Trace-Id` on every AWS request), so a fault
hits exactly the invocation it is meant for and nothing the schedulers run meanwhile.

The gate also taps successful SNS `Publish` calls (topic, message, MessageId, trace header): that
is how the devstack delivers SNS messages to the subscribed function across processes
(devstack.aws.sns_delivery writes the SNS segment and builds the event).

Example (not run: starts moto behind the gate):
    >>> gate = AwsGate()
    >>> server = GatedMotoServer(gate).start()                                    # doctest: +SKIP
    >>> rule = gate.arm(FaultRule.dynamodb("PutItem", "ResourceNotFoundException",
    ...                                    table="sentiment-analyzer-local-state"), trace_root=root)  # doctest: +SKIP
    >>> rule.hits                                                                 # doctest: +SKIP
    1
"""

from __future__ import annotations

import io
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from werkzeug.serving import make_server

from devstack.aws.moto_server import MotoServer
from devstack.aws.sns_delivery import Publication
from devstack.loopback import LoopbackServer
from lib.tracing.header import InvalidTraceHeaderError, TraceHeader

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
_CREDENTIAL_SERVICE = re.compile(r"Credential=[^/]+/[^/]+/[^/]+/([^/]+)/aws4_request")
_MESSAGE_ID = re.compile(r"<MessageId>([^<]+)</MessageId>")


@dataclass(frozen=True)
class AwsRequest:
    """One AWS API call as the gate sees it."""

    service: str            # signing name: dynamodb, sns, sqs, secretsmanager, monitoring, xray, ...
    operation: str          # PutItem, Publish, ...
    params: dict[str, Any]  # the JSON body, or the form fields of a query-protocol call
    trace_header: TraceHeader | None
    json_protocol: bool

    @property
    def tables(self) -> set[str]:
        """Every table the call touches: `TableName`, each transaction item's, each batch's `RequestItems` key."""
        found = {str(self.params["TableName"])} if "TableName" in self.params else set()
        for item in self.params.get("TransactItems") or []:
            found.update(str(op["TableName"]) for op in item.values() if isinstance(op, Mapping) and "TableName" in op)
        found.update(str(name) for name in (self.params.get("RequestItems") or {}))
        return found

    def attribute_values(self) -> list[Any]:
        """Every DynamoDB value in the call (key, item and expression values), unwrapped: `{"S": "x"}` → "x"."""
        found: list[Any] = []
        for source in (self.params.get("Item"), self.params.get("Key"), self.params.get("ExpressionAttributeValues")):
            for value in (source or {}).values():
                if isinstance(value, Mapping) and len(value) == 1:
                    found.append(next(iter(value.values())))
        return found


@dataclass
class FaultRule:
    """Answer matching calls with an AWS error. `times=None`: until disarmed.

    `status` must be a non-retryable 4xx for a fault that hits one logical call once: botocore
    retries throttling and 5xx answers (up to 10 times for DynamoDB).
    """

    service: str
    operation: str
    code: str
    status: int = 400
    message: str = "injected by the devstack fault gate"
    when: Callable[[AwsRequest], bool] = lambda request: True
    description: str = ""
    trace_root: str | None = None
    times: int | None = 1
    hits: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def dynamodb(cls, operation: str, code: str = "ResourceNotFoundException", *, table: str,
                 value: str | None = None, index: str | None = None, description: str = "") -> FaultRule:
        """A DynamoDB fault on `table` (and only calls carrying `value` / using `index`, when given)."""

        def when(request: AwsRequest) -> bool:
            return (table in request.tables
                    and (value is None or value in request.attribute_values())
                    and (index is None or request.params.get("IndexName") == index))

        return cls("dynamodb", operation, code, 400, f"injected {code}: {table}", when, description)

    @classmethod
    def sns_publish(cls, topic_arn: str, code: str = "AuthorizationError", status: int = 403,
                    description: str = "") -> FaultRule:
        return cls("sns", "Publish", code, status, f"injected {code}: {topic_arn}",
                   lambda request: request.params.get("TopicArn") == topic_arn, description)

    def matches(self, request: AwsRequest) -> bool:
        if request.service != self.service or request.operation != self.operation:
            return False
        if self.trace_root is not None and (request.trace_header is None or
                                            request.trace_header.root != self.trace_root):
            return False
        return self.when(request)

    def take(self) -> bool:
        """Count one hit, if the rule has hits left."""
        with self._lock:
            if self.times is not None and self.hits >= self.times:
                return False
            self.hits += 1
            return True

    @property
    def spent(self) -> bool:
        return self.times is not None and self.hits >= self.times


class AwsGate:
    """WSGI middleware in front of moto: armed fault rules, and the SNS Publish tap."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._publish_listeners: list[Callable[[Publication], None]] = []
        # moto's backends are not thread-safe (a TransactWriteItems deep-copies a table another request is
        # writing: "dictionary changed size during iteration"), so the gate lets one call in at a time.
        self._moto_lock = threading.Lock()

    # rules ------------------------------------------------------------------------------------
    def arm(self, rule: FaultRule, trace_root: str | None = None) -> FaultRule:
        armed = replace(rule, trace_root=trace_root) if trace_root is not None else rule
        with self._lock:
            self._rules.append(armed)
        return armed

    def disarm(self, rule: FaultRule) -> None:
        with self._lock:
            self._rules = [r for r in self._rules if r is not rule]

    def disarm_all(self) -> None:
        with self._lock:
            self._rules = []

    def _fault_for(self, request: AwsRequest) -> FaultRule | None:
        with self._lock:
            rules = list(self._rules)
        for rule in rules:
            if rule.matches(request) and rule.take():
                return rule
        return None

    # SNS tap ----------------------------------------------------------------------------------
    def on_publish(self, listener: Callable[[Publication], None]) -> None:
        """`listener(publication)` after each successful Publish (called on the request's thread)."""
        self._publish_listeners.append(listener)

    # WSGI -------------------------------------------------------------------------------------
    def wrap(self, app: WsgiApp) -> WsgiApp:
        def gated(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("REQUEST_METHOD") == "OPTIONS" and environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"):
                return _cors_preflight(environ, start_response)
            length = int(environ.get("CONTENT_LENGTH") or 0)
            body = environ["wsgi.input"].read(length) if length else b""
            environ["wsgi.input"] = io.BytesIO(body)
            request = _describe(environ, body)
            rule = self._fault_for(request) if request is not None else None
            if request is not None and rule is not None:
                return _error_response(request, rule, start_response)
            with self._moto_lock:
                status_line: list[str] = []

                def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
                    status_line.append(status)
                    return start_response(status, headers, exc_info)

                chunks = list(app(environ, capture))
            if (request is not None and request.service == "sns" and request.operation == "Publish"
                    and status_line and status_line[0].startswith("200")):
                self._tapped_publish(request, b"".join(chunks))
            return chunks

        return gated

    def _tapped_publish(self, request: AwsRequest, response: bytes) -> None:
        found = _MESSAGE_ID.search(response.decode(errors="replace"))
        if found is None:
            return
        publication = Publication(
            topic_arn=str(request.params["TopicArn"]), message=str(request.params.get("Message", "")),
            subject=request.params.get("Subject"), message_id=found.group(1),
            trace_header=request.trace_header, published_at=time.time(),
        )
        for listener in self._publish_listeners:
            listener(publication)


def _describe(environ: Mapping[str, Any], body: bytes) -> AwsRequest | None:
    """Service, operation and parameters of a request to moto; None for what is not an API call."""
    match = _CREDENTIAL_SERVICE.search(str(environ.get("HTTP_AUTHORIZATION", "")))
    if match is None:
        return None
    service = match.group(1)
    target = str(environ.get("HTTP_X_AMZ_TARGET", ""))
    params: dict[str, Any] = {}
    if target:  # JSON protocol: `DynamoDB_20120810.PutItem`
        operation = target.rpartition(".")[2]
        try:
            parsed = json.loads(body) if body else {}
            params = parsed if isinstance(parsed, dict) else {}
        except ValueError:  # a body the gate cannot read (e.g. compressed) is passed through untouched
            params = {}
    else:  # query protocol: `Action=Publish&TopicArn=...`
        form = {key: values[0] for key, values in parse_qs(body.decode(errors="replace")).items()}
        operation = form.pop("Action", "")
        params = form
    if not operation:
        return None
    raw_header = environ.get("HTTP_X_AMZN_TRACE_ID")
    header = None
    if raw_header:
        try:
            header = TraceHeader.parse(str(raw_header))
        except InvalidTraceHeaderError:  # AWS ignores a malformed trace header too: it only loses the scope
            header = None
    return AwsRequest(service, operation, params, header, bool(target))


def _cors_preflight(environ: Mapping[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A browser's CORS preflight (the dashboard page signing in with Cognito's InitiateAuth): AWS's
    service endpoints answer it, but moto routes a request without X-Amz-Target or a signature to S3
    (a 500), so the gate answers it, allowing the method and headers asked for."""
    start_response("200 OK", [
        ("Access-Control-Allow-Origin", str(environ.get("HTTP_ORIGIN") or "*")),
        ("Access-Control-Allow-Methods", str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_METHOD"))),
        ("Access-Control-Allow-Headers", str(environ.get("HTTP_ACCESS_CONTROL_REQUEST_HEADERS") or "")),
        ("Access-Control-Max-Age", "600"), ("Content-Length", "0")])
    return [b""]


def _error_response(request: AwsRequest, rule: FaultRule, start_response: Callable[..., Any]) -> list[bytes]:
    request_id = str(uuid.uuid4())
    reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 429: "Too Many Requests",
              500: "Internal Server Error", 503: "Service Unavailable"}.get(rule.status, "Error")
    if request.json_protocol:
        body = json.dumps({"__type": f"com.amazonaws.{request.service}#{rule.code}", "message": rule.message})
        content_type = "application/x-amz-json-1.0"
    else:
        body = (f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(rule.code)}</Code>"
                f"<Message>{escape(rule.message)}</Message></Error><RequestId>{request_id}</RequestId>"
                "</ErrorResponse>")
        content_type = "text/xml"
    raw = body.encode()
    start_response(f"{rule.status} {reason}", [("Content-Type", content_type), ("Content-Length", str(len(raw))),
                                               ("x-amzn-RequestId", request_id)])
    return [raw]


class _GatedThreadedServer:
    """moto's WSGI application behind the gate, served on its own thread (what ThreadedMotoServer does)."""

    def __init__(self, gate: AwsGate, host: str, port: int):
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app

        app = gate.wrap(DomainDispatcherApplication(create_backend_app))
        self._server = LoopbackServer(make_server(host, port, app, threaded=True, request_handler=MotoRequestHandler),
                                      name="moto")

    def start(self) -> None:
        self._server.start()

    def get_host_and_port(self) -> tuple[str, int]:
        return self._server.host, self._server.port

    def stop(self) -> None:
        self._server.stop()


class GatedMotoServer(MotoServer):
    """`MotoServer` whose every request passes through `gate` (same interface, so TracePipeline takes it)."""

    def __init__(self, gate: AwsGate, host: str = "127.0.0.1", port: int = 0):
        super().__init__(host, port)
        self.gate = gate
        self._server = _GatedThreadedServer(gate, host, port)  # type: ignore[assignment]
