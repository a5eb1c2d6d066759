"""The per-source circuit breaker's state machine (persisted by the ingestion Lambda: silent paths 1-2)."""

from __future__ import annotations

import datetime as dt

import pytest

from lib.news.breaker import BreakerPolicy, BreakerState, BreakerStatus

NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)
POLICY = BreakerPolicy(failure_threshold=3, cooldown=dt.timedelta(minutes=5))


def test_consecutive_failures_open_the_breaker_at_the_threshold() -> None:
    state = BreakerState.closed("tiingo")
    for expected in (1, 2):
        state = state.after_failure(POLICY, NOW)
        assert (state.state, state.failures, POLICY.allows(state, NOW)) == (BreakerStatus.CLOSED, expected, True)
    state = state.after_failure(POLICY, NOW)
    assert (state.state, state.opened_at) == (BreakerStatus.OPEN, NOW)
    assert not POLICY.allows(state, NOW + dt.timedelta(minutes=4, seconds=59))
    assert POLICY.allows(state, NOW + dt.timedelta(minutes=5))


def test_a_success_resets_and_the_half_open_trial_decides() -> None:
    assert BreakerState.closed("x").after_failure(POLICY, NOW).after_success() == BreakerState.closed("x")
    opened = BreakerState("x", BreakerStatus.OPEN, 3, NOW)
    trial = opened.trial()
    assert trial.state is BreakerStatus.HALF_OPEN
    assert trial.after_success() == BreakerState.closed("x")
    later = NOW + dt.timedelta(minutes=6)
    reopened = trial.after_failure(POLICY, later)
    assert (reopened.state, reopened.opened_at) == (BreakerStatus.OPEN, later)  # the cooldown restarts
    assert BreakerState.closed("x").trial() == BreakerState.closed("x")


@pytest.mark.req("FR-018")
def test_a_threshold_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerPolicy(failure_threshold=0)
