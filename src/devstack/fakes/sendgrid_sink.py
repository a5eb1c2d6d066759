"""A local stand-in for SendGrid's v3 Mail Send API (`POST /v3/mail/send`) on loopback.

It answers as SendGrid does, so the notification Lambda's `sendgrid` client runs unchanged against
it (`SENDGRID_HOST` = `base_url`):

- 202, empty body, `X-Message-Id`: the email is accepted and recorded (`sent()`);
- 401 `{"errors": [...]}` without `Authorization: Bearer <api key>` or with another key;
- 400 `{"errors": [{"message", "field", "help"}]}` for a body that is not JSON or lacks
  `personalizations[].to[].email`, `from.email`, `subject` or `content[]`;
- 413 for a body over `MAX_BODY_BYTES`; 404 / 405 for other paths and methods.

On demand (`fail(mode, times)`), the next `times` requests (or all, until `recover()`) get a 429
(with SendGrid's `X-RateLimit-*` headers), a 500, or hang: the request is held unanswered for
`hang_s` seconds (or until `recover()` / `stop()`) and the connection then closed, so a client's
timeout fires. `fail(..., recipient=address)` fails only requests to that address (one alert rule
of several), the others are answered as usual. Every request's outcome is kept in order
(`statuses`; None for a hang).

Example (not run: needs the notification function's secret on moto):
    >>> with SendGridSink() as sink:                                   # doctest: +SKIP
    ...     sink.store_api_key(secret_name)          # the `sendgrid` secret: {"api_key": ...}
    ...     sink.fail(SinkFailure.SERVER_ERROR, times=1)
    ...     env = sink.environment()                 # {"SENDGRID_HOST": "http://127.0.0.1:<port>"}
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler
from typing import Any

import boto3

from devstack.fakes.failures import ScriptedFailures
from devstack.loopback import LoopbackServer, LoopbackService

MAIL_SEND_PATH = "/v3/mail/send"
DEFAULT_API_KEY = "SG.local-devstack-key.not-a-real-secret"
MAX_BODY_BYTES = 1024 * 1024
RATE_LIMIT_PER_WINDOW = 600


class SinkFailure(Enum):
    RATE_LIMITED = "rate_limited"  # 429
    SERVER_ERROR = "server_error"  # 500
    HANG = "hang"                  # no answer until hang_s / recover()


@dataclass(frozen=True)
class SentEmail:
    """One accepted email, as SendGrid received it."""

    message_id: str
    to: tuple[str, ...]
    from_address: str
    subject: str
    text: str
    received_at: float


def mail_errors(body: Any) -> list[dict[str, Any]]:
    """What SendGrid would answer 400 for (the subset of its checks the notification Lambda can trip)."""
    errors: list[dict[str, Any]] = []

    def missing(field: str, message: str) -> None:
        errors.append({"message": message, "field": field, "help": None})

    if not isinstance(body, dict):
        return [{"message": "Bad Request", "field": None, "help": None}]
    personalizations = body.get("personalizations")
    if not isinstance(personalizations, list) or not personalizations:
        missing("personalizations", "The personalizations field is required and must have at least one "
                "personalization.")
    else:
        for index, personalization in enumerate(personalizations):
            recipients = personalization.get("to") if isinstance(personalization, dict) else None
            if not isinstance(recipients, list) or not recipients or not all(
                    isinstance(r, dict) and isinstance(r.get("email"), str) and "@" in r["email"] for r in recipients):
                missing(f"personalizations.{index}.to", "The to array is required and must contain email addresses.")
    sender = body.get("from")
    if not isinstance(sender, dict) or not isinstance(sender.get("email"), str) or "@" not in sender["email"]:
        missing("from.email", "The from email does not contain a valid address.")
    if not isinstance(body.get("subject"), str) or not body["subject"]:
        missing("subject", "The subject is required.")
    content = body.get("content")
    if not isinstance(content, list) or not content or not all(
            isinstance(c, dict) and isinstance(c.get("type"), str) and isinstance(c.get("value"), str)
            for c in content):
        missing("content", "The content value must be a string at least one character in length.")
    return errors


def recipients_of(body: Any) -> tuple[str, ...]:
    """Every `personalizations[].to[].email` of a request body that has them (none otherwise)."""
    if not isinstance(body, dict) or not isinstance(body.get("personalizations"), list):
        return ()
    return tuple(str(r["email"]) for p in body["personalizations"] if isinstance(p, dict)
                 for r in p.get("to") or [] if isinstance(r, dict) and "email" in r)


class SendGridSink(LoopbackService):
    """The Mail Send endpoint on one loopback port (port 0 by default: a free one)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, api_key: str = DEFAULT_API_KEY, hang_s: float = 30.0):
        self.api_key = api_key
        self.hang_s = hang_s
        self._sent: list[SentEmail] = []
        self._statuses: list[int | None] = []
        self._failures: ScriptedFailures[str | None, SinkFailure] = ScriptedFailures()  # per recipient, None: any
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = LoopbackServer.http(host, port, self._handler_class(), name="sendgrid-sink")

    # lifecycle (start, the context manager, base_url: LoopbackService) -----------------------
    def stop(self) -> None:
        self._release.set()  # hung requests end now
        super().stop()

    def environment(self) -> dict[str, str]:
        """The notification function's env values that point it at this sink."""
        return {"SENDGRID_HOST": self.base_url}

    def store_api_key(self, secret_name: str) -> None:
        """Put this sink's key in the `sendgrid` secret (stack.json: JSON {"api_key": key}), via boto3 defaults."""
        boto3.client("secretsmanager").put_secret_value(SecretId=secret_name,
                                                         SecretString=json.dumps({"api_key": self.api_key}))

    # behaviour on demand ----------------------------------------------------------------------
    def fail(self, mode: SinkFailure, times: int | None = None, recipient: str | None = None) -> None:
        """Fail the next `times` requests (None: every request until `recover()`), only those to
        `recipient` when one is given."""
        self._release.clear()
        self._failures.fail(recipient, mode, times)

    def recover(self) -> None:
        self._failures.recover_all()
        self._release.set()

    def sent(self) -> list[SentEmail]:
        with self._lock:
            return list(self._sent)

    @property
    def statuses(self) -> list[int | None]:
        """Each request's answer, in order (None: hung, never answered)."""
        with self._lock:
            return list(self._statuses)

    def clear(self) -> None:
        with self._lock:
            self._sent.clear()
            self._statuses.clear()

    def _record(self, status: int | None, email: SentEmail | None = None) -> None:
        with self._lock:
            self._statuses.append(status)
            if email is not None:
                self._sent.append(email)

    # HTTP ---------------------------------------------------------------------------------------
    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # one line per request drowns the console
                pass

            def _answer(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
                raw = b"" if body is None else json.dumps(body).encode()
                sink._record(status)  # before answering: a client that got the answer finds it recorded
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                if raw:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _not_allowed(self) -> None:
                self.close_connection = True
                self._answer(405, {"errors": [{"message": "method not allowed", "field": None, "help": None}]})

            do_GET = do_PUT = do_PATCH = do_DELETE = _not_allowed

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if self.path.split("?", 1)[0] != MAIL_SEND_PATH:
                    self.close_connection = True
                    self._answer(404, {"errors": [{"message": "not found", "field": None, "help": None}]})
                    return
                if length > MAX_BODY_BYTES:
                    self.close_connection = True
                    self._answer(413, {"errors": [{"message": "payload too large", "field": None, "help": None}]})
                    return
                raw = self.rfile.read(length)
                if self.headers.get("Authorization") != f"Bearer {sink.api_key}":
                    self._answer(401, {"errors": [{"message": "The provided authorization grant is invalid, "
                                                   "expired, or revoked", "field": None, "help": None}]})
                    return
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = None
                failure = next((mode for key in (*recipients_of(body), None)
                                if (mode := sink._failures.take(key)) is not None), None)
                if failure is SinkFailure.HANG:
                    sink._record(None)
                    sink._release.wait(sink.hang_s)
                    self.close_connection = True  # never answered: the client's timeout is what ends it
                    return
                if failure is SinkFailure.RATE_LIMITED:
                    reset = str(int(time.time()) + 60)
                    self._answer(429, {"errors": [{"message": "too many requests", "field": None, "help": None}]},
                                 {"X-RateLimit-Limit": str(RATE_LIMIT_PER_WINDOW), "X-RateLimit-Remaining": "0",
                                  "X-RateLimit-Reset": reset})
                    return
                if failure is SinkFailure.SERVER_ERROR:
                    self._answer(500, {"errors": [{"message": "internal error", "field": None, "help": None}]})
                    return
                errors = mail_errors(body)
                if errors:
                    self._answer(400, {"errors": errors})
                    return
                email = SentEmail(
                    message_id=uuid.uuid4().hex,
                    to=tuple(r["email"] for p in body["personalizations"] for r in p["to"]),
                    from_address=body["from"]["email"],
                    subject=body["subject"],
                    text="\n".join(c["value"] for c in body["content"] if c["type"] == "text/plain"),
                    received_at=time.time(),
                )
                sink._record(202, email)
                self.send_response(202)
                self.send_header("X-Message-Id", email.message_id)
                self.send_header("Content-Length", "0")
                self.end_headers()

        return Handler
