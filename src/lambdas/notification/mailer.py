"""Sending one email through SendGrid, traced and retried.

The `sendgrid` client speaks HTTP through python-http-client (urllib), which the Tracer does not
patch (FR-028): each attempt is its own `SendGrid` subsegment (`http_call_subsegment`: status,
duration, taxonomy flag, bounded cause). Nothing of the request goes in it: not the API key (a
header), not the recipient (the body); errors are re-raised as our own types whose messages
name only the status, because the library's carry the response body and headers.

Retries: 429, 5xx, timeouts and unreachable hosts are transient and retried after each of the
policy's delays (bounded: `len(delays) + 1` attempts, never past the invocation's deadline); any
other 4xx (a rejected request, a wrong key) is permanent and raised at once.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> policy = RetryPolicy(delays_s=(1.0, 4.0), timeout_s=5.0)
    >>> mailer = SendGridMailer(tracer, api_key, "https://api.sendgrid.com", policy)         # doctest: +SKIP
    >>> mailer.send(Mail(from_email=..., to_emails=..., subject=..., plain_text_content=...))  # doctest: +SKIP
    202
"""

from __future__ import annotations

import http.client
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from aws_lambda_powertools import Tracer
from python_http_client.exceptions import HTTPError as SendGridClientHTTPError
from sendgrid import SendGridAPIClient
from sendgrid.helpers.mail import Mail

from lib.tracing.bounds import truncate_message
from lib.tracing.powertools import annotate, http_call_subsegment

MAIL_SEND_PATH = "/v3/mail/send"
SUBSEGMENT_NAME = "SendGrid"
# A retry is only started when this much time would be left after it (s): Lambda must not time out
# mid-send, which would lose the error's type.
DEADLINE_MARGIN_S = 1.0


class DeliveryError(RuntimeError):
    """An email SendGrid did not accept."""


class SendGridAttemptError(DeliveryError):
    """One attempt failed: `status` is SendGrid's answer, None when there was none (timeout, unreachable)."""

    def __init__(self, status: int | None, detail: str):
        super().__init__(detail)
        self.status = status

    @property
    def transient(self) -> bool:
        return self.status is None or self.status == 429 or self.status >= 500


class SendGridRejectedError(DeliveryError):
    """SendGrid refused the request (a 4xx other than 429): retrying cannot help."""


class SendGridUnavailableError(DeliveryError):
    """SendGrid kept failing (429, 5xx, timeouts) until the retries or the time ran out."""


@dataclass(frozen=True)
class RetryPolicy:
    delays_s: tuple[float, ...]  # the wait before attempt 2, 3, ...
    timeout_s: float             # per attempt

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> RetryPolicy:
        source = os.environ if env is None else env
        delays = tuple(float(part) for part in source["SENDGRID_RETRY_DELAYS_S"].split(",") if part.strip())
        timeout = float(source["SENDGRID_TIMEOUT_S"])
        if any(delay < 0 for delay in delays) or timeout <= 0:
            raise ValueError("SENDGRID_RETRY_DELAYS_S must be >= 0 and SENDGRID_TIMEOUT_S > 0")
        return cls(delays, timeout)

    @property
    def attempts(self) -> int:
        return len(self.delays_s) + 1


class SendGridMailer:
    def __init__(self, tracer: Tracer, api_key: str, host: str, policy: RetryPolicy,
                 seconds_left: Callable[[], float] = lambda: float("inf"),
                 sleep: Callable[[float], None] = time.sleep):
        self._tracer = tracer
        self._client = SendGridAPIClient(api_key=api_key, host=host)
        self._url = f"{host.rstrip('/')}{MAIL_SEND_PATH}"
        self._policy = policy
        self._seconds_left = seconds_left
        self._sleep = sleep
        self.attempts = 0  # of the last send

    def send(self, mail: Mail) -> int:
        """SendGrid's status (202) once accepted; SendGridRejectedError / SendGridUnavailableError otherwise."""
        body = mail.get()
        self.attempts = 0
        for attempt in range(1, self._policy.attempts + 1):
            self.attempts = attempt
            try:
                return self._attempt(body, attempt)
            except SendGridAttemptError as error:
                if not error.transient:
                    raise SendGridRejectedError(f"SendGrid rejected the email: {error}") from None
                if attempt == self._policy.attempts:
                    raise SendGridUnavailableError(f"not delivered after {attempt} attempts: {error}") from None
                delay = self._policy.delays_s[attempt - 1]
                if self._seconds_left() < delay + self._policy.timeout_s + DEADLINE_MARGIN_S:
                    raise SendGridUnavailableError(
                        f"not delivered after {attempt} attempt(s), no time left for another: {error}") from None
                self._sleep(delay)
        raise AssertionError("unreachable: the loop returns or raises")

    def _attempt(self, body: dict[str, object], attempt: int) -> int:
        with http_call_subsegment(self._tracer, SUBSEGMENT_NAME, method="POST", url=self._url) as call:
            annotate(self._tracer, attempt=attempt)
            try:
                response = self._client.client.mail.send.post(request_body=body, timeout=self._policy.timeout_s)
            except SendGridClientHTTPError as error:
                call.status = int(error.status_code)
                # `from None`: the library's exception carries the response body and headers.
                raise SendGridAttemptError(call.status, f"SendGrid answered HTTP {call.status}") from None
            except (OSError, http.client.HTTPException) as error:  # timeout, refused, reset: no answer
                raise SendGridAttemptError(
                    None, f"SendGrid did not answer: {type(error).__name__}: {truncate_message(str(error), 200)}"
                ) from None
            call.status = int(response.status_code)
        return call.status
