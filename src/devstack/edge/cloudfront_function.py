"""The real CloudFront Function (`strip_sampling.js`), run by node on every request, as CloudFront runs it.

CloudFront runs a viewer-request function on each request of the cache behaviours it is associated
with (every API and SSE path, `modules/edge/cloudfront.tf`), before the request goes to the origin.
The devstack runs the very file Terraform deploys, in one long-lived node process
(`cloudfront_function.js`: one JSON line in, one out; a fresh VM context per event), so the edge rule
has exactly one implementation. `benchmarks/bench_cloudfront_function.py` prints what a call costs.

Event and result shapes (runtime `cloudfront-js-2.0`, event `version: "1.0"`): header names are
lowercase; a header is `{"value": v}` or, repeated, `{"value": first, "multiValue": [{"value": v}, ...]}`;
the function returns the request (possibly changed) or a response (`statusCode`, ...):
https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/functions-event-structure.html
A function that fails makes CloudFront answer 503 ("HTTP 503 status code (function execution error)" in
https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/troubleshooting-response-errors.html).

Example:
    >>> header = ("X-Amzn-Trace-Id", "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1")
    >>> with CloudFrontFunction() as function:
    ...     out = function.viewer_request("GET", "/api/v2/health", "", [header])
    >>> out.headers
    [('X-Amzn-Trace-Id', 'Root=1-5759e988-bd862e3fe1be46a994272793')]
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl

from devstack.stack import REPO_ROOT

STRIP_SAMPLING_JS = REPO_ROOT / "infrastructure" / "terraform" / "modules" / "edge" / "functions" / "strip_sampling.js"
RUNNER_JS = Path(__file__).with_name("cloudfront_function.js")


class CloudFrontFunctionError(RuntimeError):
    """The function threw or returned something CloudFront cannot use: CloudFront answers 503."""


@dataclass(frozen=True)
class FunctionResult:
    """What the viewer-request function decided: forward `headers` to the origin, or answer `response`."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    response: dict[str, Any] | None = None


def _event_headers(headers: list[tuple[str, str]]) -> dict[str, dict[str, Any]]:
    grouped: dict[str, list[str]] = {}
    for name, value in headers:
        grouped.setdefault(name.lower(), []).append(value)
    return {name: ({"value": values[0]} if len(values) == 1
                   else {"value": values[0], "multiValue": [{"value": v} for v in values]})
            for name, values in grouped.items()}


def _values(entry: dict[str, Any]) -> list[str]:
    if entry.get("multiValue"):
        return [str(item["value"]) for item in entry["multiValue"]]
    return [str(entry["value"])]


def _forwarded_headers(sent: list[tuple[str, str]], returned: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
    """The returned headers in the client's order and spelling; a header the function changed appears
    once with its new values, one it removed not at all, one it added at the end."""
    sent_values = _event_headers(sent)
    kept: list[tuple[str, str]] = []
    done: set[str] = set()
    for name, value in sent:
        lowered = name.lower()
        if lowered not in returned:
            continue
        if _values(returned[lowered]) == _values(sent_values[lowered]):
            kept.append((name, value))
        elif lowered not in done:
            kept.extend((name, new) for new in _values(returned[lowered]))
            done.add(lowered)
    kept.extend((name, new) for name, entry in returned.items() if name not in sent_values for new in _values(entry))
    return kept


class CloudFrontFunction:
    """One node process running one CloudFront Function; thread-safe, one event at a time."""

    def __init__(self, source: Path = STRIP_SAMPLING_JS, node: str | None = None):
        self.source = source
        found = node or shutil.which("node")
        if found is None:
            raise CloudFrontFunctionError("node is not installed: the edge runs the CloudFront Function with it")
        self._node: str = found
        self._process: subprocess.Popen[str] | None = None
        self._lock = threading.Lock()

    def start(self) -> CloudFrontFunction:
        self._process = subprocess.Popen([self._node, str(RUNNER_JS), str(self.source)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, text=True, bufsize=1)
        return self

    def stop(self) -> None:
        """Idempotent: closes node's stdin (it exits at end of input) and waits for it."""
        process, self._process = self._process, None
        if process is None:
            return
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()

    def __enter__(self) -> CloudFrontFunction:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def run(self, event: dict[str, Any]) -> dict[str, Any]:
        """The function's result for one event (the raw request or response object)."""
        with self._lock:
            if self._process is None:
                raise CloudFrontFunctionError("the CloudFront Function runner is not started")
            assert self._process.stdin is not None and self._process.stdout is not None
            self._process.stdin.write(json.dumps(event) + "\n")
            self._process.stdin.flush()
            line = self._process.stdout.readline()
        if not line:
            raise CloudFrontFunctionError("the CloudFront Function runner exited")
        reply = json.loads(line)
        if "error" in reply:
            raise CloudFrontFunctionError(reply["error"])
        result = reply["result"]
        if not isinstance(result, dict):
            raise CloudFrontFunctionError(f"the function returned {result!r}, neither a request nor a response")
        return result

    def viewer_request(self, method: str, uri: str, query: str, headers: list[tuple[str, str]],
                       viewer_ip: str = "127.0.0.1") -> FunctionResult:
        """Run the function on one viewer request: the headers to forward, or the response it chose."""
        querystring: dict[str, dict[str, Any]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            querystring.setdefault(name, {"value": value, "multiValue": []})["multiValue"].append({"value": value})
        event = {
            "version": "1.0",
            "context": {"distributionDomainName": "d111111abcdef8.cloudfront.net", "distributionId": "EDEVSTACKLOCAL",
                        "eventType": "viewer-request", "requestId": "devstack"},
            "viewer": {"ip": viewer_ip},
            "request": {"method": method, "uri": uri, "querystring": querystring,
                        "headers": _event_headers(headers), "cookies": {}},
        }
        result = self.run(event)
        if "statusCode" in result:
            return FunctionResult(response=result)
        returned = result.get("headers")
        if not isinstance(returned, dict):
            raise CloudFrontFunctionError("the returned request has no headers object")
        return FunctionResult(headers=_forwarded_headers(headers, returned))
