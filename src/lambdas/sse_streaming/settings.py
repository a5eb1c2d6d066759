"""The SSE function's settings, read from the environment the stack map gives it (stack.json).

Example:
    >>> settings = SseSettings.from_env({"NEWS_TABLE": "news", "CONFIG_TABLE": "config"})
    >>> settings.poll_interval_s, settings.max_connections
    (2.0, 100)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lib.config import env_number, require_env


def _number(env: Mapping[str, str], name: str, default: str, minimum: float) -> float:
    return env_number(name, env.get(name, default), low=minimum)


@dataclass(frozen=True)
class SseSettings:
    news_table: str
    config_table: str
    poll_interval_s: float
    heartbeat_interval_s: float
    max_connections: int
    # The stream ends with a `deadline` event this long before the invocation deadline: room for
    # the final flush (bounded by the exporter timeout) and the end of the response.
    deadline_margin_s: float
    # Only items whose status changed at least this long ago are delivered, so an item the index
    # shows late (GSI propagation) is never skipped by a cursor that already passed its timestamp.
    # A poll that sees a younger item polls again as it settles, not a whole interval later.
    index_settle_s: float
    # The browser's reconnect delay after a graceful close (FR-088/089).
    retry_ms: int
    # The secret (JSON {"token": ...}) a canary probe's `x-canary-probe` header must carry; unset: no probes.
    canary_probe_secret_name: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SseSettings:
        env = os.environ if env is None else env
        require_env(("NEWS_TABLE", "CONFIG_TABLE"), env)
        return cls(
            news_table=env["NEWS_TABLE"],
            config_table=env["CONFIG_TABLE"],
            poll_interval_s=_number(env, "SSE_POLL_INTERVAL_S", "2", 0.05),
            heartbeat_interval_s=_number(env, "SSE_HEARTBEAT_INTERVAL_S", "15", 0.05),
            max_connections=int(_number(env, "SSE_MAX_CONNECTIONS", "100", 1)),
            deadline_margin_s=_number(env, "SSE_DEADLINE_MARGIN_S", "5", 0.1),
            index_settle_s=_number(env, "SSE_INDEX_SETTLE_MS", "500", 0) / 1000,
            retry_ms=int(_number(env, "SSE_RETRY_MS", "1000", 0)),
            canary_probe_secret_name=env.get("CANARY_PROBE_SECRET_NAME") or None,
        )
