"""What the gateway serves for the dashboard's trace links, locally (the devstack has no console).

- `GET /config.json`: where the page links trace ids: `{"traceLinks": {"kind": "local", "view": "trace.html"}}`
  (in AWS, Terraform writes the CloudWatch console's kind to the frontend bucket instead).
- `GET /devstack/traces/<trace id>`: the trace read back through the local X-Ray API (`BatchGetTraces`, as
  `make traces` reads it), every segment, subsegment and OTel span as one flat document, for
  `trace.html` to draw. 404 when the X-Ray API holds no such trace (yet), 400 for a malformed id.

Example (not run: needs the X-Ray API of a running stack):
    >>> views = LocalTraceViews(boto3.client("xray"))                             # doctest: +SKIP
    >>> views.handle("GET", "/devstack/traces/1-5759e988-bd862e3fe1be46a994272793").status  # doctest: +SKIP
    200
"""

from __future__ import annotations

import json
from typing import Any

from devstack.xray.trace_reader import read_traces
from lib.tracing.header import TRACE_ID

CONFIG_PATH = "/config.json"
TRACES_PREFIX = "/devstack/traces/"
VIEW_PAGE = "trace.html"  # frontend/trace.html, in the build the gateway serves
LOCAL_CONFIG = {"traceLinks": {"kind": "local", "view": VIEW_PAGE}}


def trace_view_url(gateway_url: str, trace_id: str) -> str:
    """The local trace view of one trace: what the dashboard's trace links open (and the demo report lists).

    Example:
        >>> trace_view_url("http://127.0.0.1:8000", "1-5759e988-bd862e3fe1be46a994272793")
        'http://127.0.0.1:8000/trace.html?id=1-5759e988-bd862e3fe1be46a994272793'
    """
    return f"{gateway_url}/{VIEW_PAGE}?id={trace_id}"


class LocalTraceViews:
    """Answers the two paths above; `serves(path)` says which paths those are."""

    def __init__(self, xray: Any, auth: dict[str, str] | None = None):
        self._xray = xray
        # Where the page signs in (`{"endpoint", "clientId"}`: moto's Cognito here), or None.
        self._config = {**LOCAL_CONFIG, **({"auth": auth} if auth else {})}

    @staticmethod
    def serves(path: str) -> bool:
        return path == CONFIG_PATH or path.startswith(TRACES_PREFIX)

    def handle(self, method: str, path: str) -> tuple[int, dict[str, Any]]:
        """(status, JSON body) for a GET of one of the served paths."""
        if method not in ("GET", "HEAD"):
            return 405, {"error": "method_not_allowed", "message": f"{path} accepts GET only"}
        if path == CONFIG_PATH:
            return 200, self._config
        trace_id = path.removeprefix(TRACES_PREFIX)
        if not TRACE_ID.fullmatch(trace_id):
            return 400, {"error": "invalid_trace_id", "message": f"{trace_id[:60]!r} is not an X-Ray trace id"}
        trees = read_traces(self._xray, [trace_id])
        if not trees:
            return 404, {"error": "trace_not_found",
                         "message": f"the local X-Ray API holds no trace {trace_id} (yet: documents take seconds)"}
        return 200, {"trace_id": trace_id, "documents": trees[0].documents}

    def response(self, method: str, path: str) -> tuple[int, bytes]:
        """`handle` as an HTTP status and a JSON body."""
        status, body = self.handle(method, path)
        return status, json.dumps(body, separators=(",", ":")).encode()
