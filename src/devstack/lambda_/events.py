"""The events Lambda hands a function, built the way the AWS service that sends them builds them.

- `function_url_event`: a Function URL request, payload format 2.0, as documented in
  https://docs.aws.amazon.com/lambda/latest/dg/urls-invocation.html ("Request payload format"):
  header names lower-cased and repeated headers joined with commas, `queryStringParameters` only
  when there is a query (repeated keys joined with commas), cookies in their own `cookies` list,
  `requestContext.domainName` `<url-id>.lambda-url.<region>.on.aws`, `routeKey`/`stage` `$default`.
- `scheduled_event`: what an EventBridge schedule sends its target,
  https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-run-lambda-schedule.html.

Example:
    >>> event = function_url_event("GET", "/api/v2/stream", [("Accept", "text/event-stream")], "a=1&a=2")
    >>> event["headers"], event["queryStringParameters"], event["requestContext"]["http"]["method"]
    ({'accept': 'text/event-stream'}, {'a': '1,2'}, 'GET')
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qs

from devstack.aws.moto_server import REGION
from devstack.lambda_.invocation import ACCOUNT_ID
from devstack.stack import FunctionSpec

LOCAL_URL_ID = "localdevstackfunctionurl"  # the `<url-id>` of the one Function URL (the SSE function's)

Headers = Mapping[str, str] | Iterable[tuple[str, str]]


def _pairs(headers: Headers | None) -> Iterable[tuple[str, str]]:
    if headers is None:
        return ()
    return headers.items() if isinstance(headers, Mapping) else headers


def function_url_event(method: str, path: str, headers: Headers | None = None, query: str = "",
                       body: bytes | str | None = None, source_ip: str = "127.0.0.1",
                       url_id: str = LOCAL_URL_ID) -> dict[str, Any]:
    """The event a Function URL gives its function for one HTTP request (payload format 2.0).

    `headers` as a mapping or as the request's (name, value) pairs (repeated names allowed);
    `query` the raw query string without `?`; `body` as received (bytes are decoded as UTF-8).
    """
    now = time.time()
    joined: dict[str, str] = {}
    cookies: list[str] = []
    for key, value in _pairs(headers):
        lowered = key.lower()
        if lowered == "cookie":  # the Function URL moves cookies out of the headers into `cookies`
            cookies += [cookie.strip() for cookie in value.split(";") if cookie.strip()]
            continue
        joined[lowered] = f"{joined[lowered]},{value}" if lowered in joined else value
    event: dict[str, Any] = {
        "version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": query, "headers": joined,
        "requestContext": {
            "accountId": "anonymous", "apiId": url_id, "domainName": f"{url_id}.lambda-url.{REGION}.on.aws",
            "domainPrefix": url_id,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": source_ip,
                     "userAgent": joined.get("user-agent", "")},
            "requestId": str(uuid.uuid4()), "routeKey": "$default", "stage": "$default",
            "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)), "timeEpoch": int(now * 1000),
        },
        "isBase64Encoded": False,
    }
    if cookies:
        event["cookies"] = cookies
    parameters = {key: ",".join(values) for key, values in parse_qs(query, keep_blank_values=True).items()}
    if parameters:
        event["queryStringParameters"] = parameters
    if body:
        event["body"] = body.decode("utf-8", errors="replace") if isinstance(body, bytes) else body
    return event


def scheduled_event(function: FunctionSpec, now: dt.datetime | None = None) -> dict[str, Any]:
    """The event EventBridge sends a scheduled target.

    Example:
        >>> from devstack.stack import load_stack
        >>> scheduled_event(load_stack().function("ingestion"))["detail-type"]
        'Scheduled Event'
    """
    moment = now or dt.datetime.now(dt.UTC)
    return {
        "version": "0", "id": str(uuid.uuid4()), "detail-type": "Scheduled Event", "source": "aws.events",
        "account": ACCOUNT_ID, "time": moment.strftime("%Y-%m-%dT%H:%M:%SZ"), "region": REGION,
        "resources": [f"arn:aws:events:{REGION}:{ACCOUNT_ID}:rule/{function.name}-schedule"], "detail": {},
    }
