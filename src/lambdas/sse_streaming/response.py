"""What the handler returns: a status, headers, and a body the runtime streams as it is produced.

The container's `bootstrap` writes `prelude()` as the JSON prelude of an
`application/vnd.awslambda.http-integration-response`, then eight NUL bytes, then each chunk of
`body` the moment it is yielded (RESPONSE_STREAM). It always calls `close()` afterwards, which
closes the body and runs `on_close` even when the body was never started.

Example:
    >>> response = json_response(404, {"error": "not_found", "message": "no such route"})
    >>> response.prelude()["statusCode"], b"".join(response.body)
    (404, b'{"error":"not_found","message":"no such route"}')
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StreamingResponse:
    status_code: int
    headers: dict[str, str]
    body: Iterator[bytes]
    cookies: list[str] = field(default_factory=list)
    on_close: Callable[[], object] | None = None

    def prelude(self) -> dict[str, Any]:
        return {"statusCode": self.status_code, "headers": dict(self.headers), "cookies": list(self.cookies)}

    def close(self) -> None:
        close_body = getattr(self.body, "close", None)
        if close_body is not None:
            close_body()
        if self.on_close is not None:
            self.on_close()


def json_response(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> StreamingResponse:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return StreamingResponse(
        status, {"content-type": "application/json", "cache-control": "no-store", **(headers or {})}, iter([body])
    )
