"""How the canary treats an AWS error: classify it, retry what may pass, never crash (FR-018, FR-079).

The canary is the one component that survives AWS failures: every AWS call it makes goes through
`call_aws`, which retries transient errors (throttling, internal, unavailable, connection) with
exponential backoff, at most three times, and turns any AWS error into `AwsCallError` carrying an
`AwsFailure` the checks report. Credential and permission errors are never retried: they are paged
at once (a revoked role does not heal by waiting).

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> policy = RetryPolicy(base_delay_s=1.0, sleep=time.sleep)                      # doctest: +SKIP
    >>> call_aws("cloudwatch:PutMetricData", lambda: cw.put_metric_data(**req), policy)  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ReadTimeoutError,
)

from lib.tracing.bounds import truncate_message

Result = TypeVar("Result")

MAX_RETRIES = 3  # FR-079: transient errors are retried at most three times
FAILURE_MESSAGE_CHARS = 500  # enough to read the cause in an alert; alerts stay small


class ErrorKind(StrEnum):
    """What an AWS error means for the canary."""

    TRANSIENT = "transient"  # throttling, internal, unavailable, connection: retry with backoff
    AUTH = "auth"  # credentials or permissions: no retry, page at once
    REJECTED = "rejected"  # any other refusal (bad request, missing resource): no retry


THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException", "RequestThrottled",
    "RequestThrottledException", "SlowDown", "ConcurrentModificationException",
})
INTERNAL_CODES = frozenset({
    "InternalFailure", "InternalError", "InternalServerError", "InternalServiceError", "InternalServiceFault",
    "InternalServiceException", "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout",
    "RequestTimeoutException",
})
AUTH_CODES = frozenset({
    "AccessDenied", "AccessDeniedException", "NotAuthorized", "InvalidClientTokenId", "UnrecognizedClientException",
    "AuthorizationError", "AuthFailure", "ExpiredToken", "ExpiredTokenException", "MissingAuthenticationToken",
    "IncompleteSignature", "SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidSignatureException",
})
TRANSIENT_CONNECTION_ERRORS = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError)


def error_code(error: BaseException) -> str:
    """The AWS error code (`AccessDenied`), or the botocore exception's class name."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or type(error).__name__)
    return type(error).__name__


def classify(error: BaseException) -> ErrorKind:
    """FR-079's taxonomy, by code first, then by HTTP status (429 / 5xx transient, 401 / 403 auth)."""
    if isinstance(error, ClientError):
        code = error_code(error)
        status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in AUTH_CODES:
            return ErrorKind.AUTH
        if code in THROTTLING_CODES or code in INTERNAL_CODES or status == 429 or status >= 500:
            return ErrorKind.TRANSIENT
        if status in (401, 403):
            return ErrorKind.AUTH
        return ErrorKind.REJECTED
    if isinstance(error, NoCredentialsError):
        return ErrorKind.AUTH
    if isinstance(error, TRANSIENT_CONNECTION_ERRORS):
        return ErrorKind.TRANSIENT
    return ErrorKind.REJECTED


@dataclass(frozen=True)
class AwsFailure:
    """One failed AWS call, as the canary reports it: which operation, which code, what it means."""

    operation: str
    code: str
    kind: ErrorKind
    message: str
    attempts: int

    @classmethod
    def of(cls, operation: str, error: BaseException, attempts: int) -> AwsFailure:
        return cls(operation, error_code(error), classify(error),
                   truncate_message(str(error), FAILURE_MESSAGE_CHARS), attempts)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class AwsCallError(Exception):
    """An AWS call failed for good (after the retries its kind allows)."""

    def __init__(self, failure: AwsFailure, error: Exception):
        super().__init__(f"{failure.operation} failed with {failure.code} ({failure.kind}) "
                         f"after {failure.attempts} attempt(s): {failure.message}")
        self.failure = failure
        self.error = error


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff for transient errors: `base_delay_s` × 1, 2, 4 (three retries at most)."""

    base_delay_s: float
    sleep: Callable[[float], None] = time.sleep
    max_retries: int = MAX_RETRIES

    def delay(self, retry: int) -> float:
        """The wait before retry number `retry` (1-based)."""
        return float(self.base_delay_s * 2 ** (retry - 1))


def call_aws(operation: str, call: Callable[[], Result], policy: RetryPolicy) -> Result:
    """`call()`, retried per `policy` while its error is transient; any final AWS error is AwsCallError.

    Only AWS errors (botocore's) are caught: a bug in our own code still fails the run loudly.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return call()
        except (ClientError, BotoCoreError) as error:
            if classify(error) is not ErrorKind.TRANSIENT or attempt > policy.max_retries:
                raise AwsCallError(AwsFailure.of(operation, error, attempt), error) from error
            policy.sleep(policy.delay(attempt))


@dataclass
class Readback:
    """When to look again for something written to an eventually consistent service (FR-078).

    The first look is immediate, then one after each of `delays_s` (30 s, then 60 s in prod). A wait
    that would end past `deadline` (a `clock()` value) is not taken: the canary must report before
    Lambda's timeout, not die waiting.
    """

    delays_s: tuple[float, ...]
    sleep: Callable[[float], None] = time.sleep
    deadline: float | None = None
    clock: Callable[[], float] = time.monotonic
    looks: int = field(default=0, init=False)

    def attempts(self) -> Iterator[int]:
        """Yields 0, 1, ... once per look, sleeping in between; the caller breaks out when satisfied."""
        self.looks = 1
        yield 0
        for number, delay in enumerate(self.delays_s, start=1):
            if self.deadline is not None and self.clock() + delay > self.deadline:
                return
            self.sleep(delay)
            self.looks += 1
            yield number
