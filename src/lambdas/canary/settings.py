"""The canary's configuration: exactly the env of stack.json's `canary` entry, checked once per run.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> settings = CanarySettings.from_env({**os.environ, "CANARY_TRACE_BATCH_SIZE": "10"})   # doctest: +SKIP
    >>> settings.readback_delays_s
    (30.0, 60.0)
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from lib.config import ConfigurationError, env_number, require_env

MAX_TRACE_BATCH = 25  # two documents a trace: one PutTraceSegments call of at most 50 documents


@dataclass(frozen=True)
class CanarySettings:
    function_name: str
    state_table: str
    alert_topic_arn: str
    trace_batch_size: int
    loss_threshold: float
    readback_delays_s: tuple[float, ...]
    backoff_base_s: float
    webhook_url: str | None
    ingestion_function_name: str
    dashboard_function: str  # name or (alias) ARN the batch probe invokes
    sse_function: str  # name or (alias) ARN the stream probe invokes
    probe_secret: str  # the secret (JSON {"token": ...}) the SSE function accepts a probe stream with

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> CanarySettings:
        source = os.environ if env is None else env

        def need(name: str) -> str:
            return require_env((name,), source)[name]

        def number(name: str, low: float, high: float) -> float:
            return env_number(name, need(name), low, high)

        batch = number("CANARY_TRACE_BATCH_SIZE", 1, MAX_TRACE_BATCH)
        if not batch.is_integer():
            raise ConfigurationError(f"CANARY_TRACE_BATCH_SIZE={batch} must be a whole number")
        threshold = number("CANARY_LOSS_THRESHOLD", 0, 1)
        if threshold == 0:
            raise ConfigurationError("CANARY_LOSS_THRESHOLD=0 would never detect loss")
        for name in ("INGESTION_FUNCTION_NAME", "CANARY_DASHBOARD_FUNCTION", "CANARY_SSE_FUNCTION"):
            if "${" in need(name):
                raise ConfigurationError(f"{name}={need(name)!r} still holds an unresolved placeholder")
        ingestion = need("INGESTION_FUNCTION_NAME")
        return cls(
            function_name=need("AWS_LAMBDA_FUNCTION_NAME"),
            state_table=need("STATE_TABLE"),
            alert_topic_arn=need("CANARY_ALERT_TOPIC_ARN"),
            trace_batch_size=int(batch),
            loss_threshold=threshold,
            readback_delays_s=_delays(need("CANARY_READBACK_DELAYS_S")),
            backoff_base_s=number("CANARY_BACKOFF_BASE_S", 0, 60),
            webhook_url=_webhook_url(source.get("CANARY_WEBHOOK_URL", "")),
            ingestion_function_name=ingestion,
            dashboard_function=need("CANARY_DASHBOARD_FUNCTION"),
            sse_function=need("CANARY_SSE_FUNCTION"),
            probe_secret=need("CANARY_PROBE_SECRET_NAME"),
        )


def _delays(raw: str) -> tuple[float, ...]:
    """`"30,60"` → (30.0, 60.0): the waits between read-back attempts (FR-078)."""
    try:
        delays = tuple(float(part) for part in raw.split(","))
    except ValueError:
        raise ConfigurationError(f"CANARY_READBACK_DELAYS_S={raw!r} must be comma-separated seconds") from None
    if any(not math.isfinite(delay) or delay < 0 or delay > 300 for delay in delays):
        raise ConfigurationError(f"CANARY_READBACK_DELAYS_S={raw!r}: each delay must be 0..300 seconds")
    return delays


def _webhook_url(raw: str) -> str | None:
    """The optional second channel (FR-080): HTTPS only, so an alert never travels in clear."""
    if not raw:
        return None
    parts = urlsplit(raw)
    if parts.scheme != "https" or not parts.hostname:
        raise ConfigurationError("CANARY_WEBHOOK_URL must be an https:// URL with a host")
    return raw
