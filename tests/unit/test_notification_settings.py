"""The notification function's retry policy and settings, read from the environment the stack map gives."""

from __future__ import annotations

import pytest

from devstack.stack import load_stack
from lambdas.notification.mailer import RetryPolicy


def test_the_stack_maps_policy_is_three_bounded_attempts() -> None:
    env = load_stack().function("notification").env
    policy = RetryPolicy.from_env(env)
    assert policy.attempts == 3 and policy.delays_s == (1.0, 4.0) and policy.timeout_s == 5.0
    # worst case for one email stays well inside the 60 s function timeout
    assert sum(policy.delays_s) + policy.attempts * policy.timeout_s < load_stack().function("notification").timeout_s


@pytest.mark.parametrize(("delays", "timeout"), [("1,-1", "5"), ("1", "0"), ("x", "5"), ("1", "soon")])
def test_a_bad_policy_is_refused(delays: str, timeout: str) -> None:
    with pytest.raises(ValueError):
        RetryPolicy.from_env({"SENDGRID_RETRY_DELAYS_S": delays, "SENDGRID_TIMEOUT_S": timeout})


def test_no_delays_means_one_attempt() -> None:
    assert RetryPolicy.from_env({"SENDGRID_RETRY_DELAYS_S": "", "SENDGRID_TIMEOUT_S": "2"}).attempts == 1
