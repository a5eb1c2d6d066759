"""The SSE function's settings, read from the environment the stack map gives it (stack.json).

Example:
    >>> settings = SseSettings.from_env({"NEWS_TABLE": "news", "CONFIG_TABLE": "config"})
    >>> settings.poll_interval_s, settings.marker_interval_s, settings.stream_lifetime_s
    (2.0, 0.5, 120.0)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from lib.config import env_number, require_env

MAX_LAMBDA_TIMEOUT_S = 900  # a lifetime past any function timeout could never be reached


def _number(env: Mapping[str, str], name: str, default: str, minimum: float) -> float:
    return env_number(name, env.get(name, default), low=minimum)


@dataclass(frozen=True)
class SseSettings:
    news_table: str
    config_table: str
    # With the change marker: the safety-net query interval (a marker write lost to a crash is
    # caught then). Without it (`SSE_MARKER_INTERVAL_S=0`): how often every stream queries the index.
    poll_interval_s: float
    # How often a stream reads the news table's change marker (feed.py), 0 for never.
    marker_interval_s: float
    heartbeat_interval_s: float
    # FR-090: every stream ends itself this long after it began, with a `reconnect` event: Lambda
    # never tells the function that its client went away, so an abandoned stream runs (and is
    # billed, and holds an execution environment) until then. README, "How long a stream lives".
    stream_lifetime_s: float
    # A stream whose invocation deadline comes first ends this long before it, the same way: room
    # for the final flush (bounded by the exporter timeout) and the end of the response.
    deadline_margin_s: float
    # Only items whose status changed at least this long ago are delivered, so an item the index
    # shows late (GSI propagation) is never skipped by a cursor that already passed its timestamp.
    # A poll that sees a younger item polls again as it settles, not a whole interval later.
    index_settle_s: float
    # The first frame's `retry:` (FR-088): the reconnect delay after a close the server did not
    # announce. The final `reconnect` event carries `retry: 0` (FR-089/090: reconnect at once).
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
            marker_interval_s=_number(env, "SSE_MARKER_INTERVAL_S", "0.5", 0),
            heartbeat_interval_s=_number(env, "SSE_HEARTBEAT_INTERVAL_S", "15", 0.05),
            stream_lifetime_s=env_number("SSE_STREAM_LIFETIME_S", env.get("SSE_STREAM_LIFETIME_S", "120"), low=1,
                                         high=MAX_LAMBDA_TIMEOUT_S),
            deadline_margin_s=_number(env, "SSE_DEADLINE_MARGIN_S", "5", 0.1),
            index_settle_s=_number(env, "SSE_INDEX_SETTLE_MS", "500", 0) / 1000,
            retry_ms=int(_number(env, "SSE_RETRY_MS", "1000", 0)),
            canary_probe_secret_name=env.get("CANARY_PROBE_SECRET_NAME") or None,
        )
