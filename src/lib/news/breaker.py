"""The per-source circuit breaker: a pure state machine; `store` persists it (`state` table, `pk="breaker"`).

closed --(threshold consecutive failures)--> open --(cooldown elapsed)--> half_open
half_open --(success)--> closed;  half_open --(failure)--> open (cooldown restarts)

Example:
    >>> policy = BreakerPolicy(failure_threshold=2, cooldown=dt.timedelta(minutes=5))
    >>> now = dt.datetime(2026, 1, 5, 12, 0, tzinfo=dt.UTC)
    >>> state = BreakerState.closed("tiingo").after_failure(policy, now).after_failure(policy, now)
    >>> str(state.state), policy.allows(state, now), policy.allows(state, now + dt.timedelta(minutes=6))
    ('open', False, True)
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from enum import StrEnum


class BreakerStatus(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failure_threshold: int = 3
    cooldown: dt.timedelta = dt.timedelta(minutes=5)

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")

    def allows(self, state: BreakerState, now: dt.datetime) -> bool:
        """May the source be called now? An open breaker lets one trial through after the cooldown."""
        if state.state is not BreakerStatus.OPEN:
            return True
        return state.opened_at is None or now >= state.opened_at + self.cooldown


@dataclass(frozen=True)
class BreakerState:
    source: str
    state: BreakerStatus
    failures: int
    opened_at: dt.datetime | None

    @classmethod
    def closed(cls, source: str) -> BreakerState:
        return cls(source, BreakerStatus.CLOSED, 0, None)

    def trial(self) -> BreakerState:
        """The state while the one trial call after the cooldown runs."""
        return replace(self, state=BreakerStatus.HALF_OPEN) if self.state is BreakerStatus.OPEN else self

    def after_success(self) -> BreakerState:
        return BreakerState.closed(self.source)

    def after_failure(self, policy: BreakerPolicy, now: dt.datetime) -> BreakerState:
        failures = self.failures + 1
        if self.state is BreakerStatus.HALF_OPEN or failures >= policy.failure_threshold:
            return BreakerState(self.source, BreakerStatus.OPEN, failures, now)
        return replace(self, failures=failures)
