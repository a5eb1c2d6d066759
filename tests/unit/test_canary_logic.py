"""The canary's pure decisions: settings, the AWS error taxonomy, when to page, the loss window, read-back timing."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from lambdas.canary.alerting import Action, advance, decide
from lambdas.canary.checks import Status, entity_ids, worst
from lambdas.canary.errors import ErrorKind, Readback, classify
from lambdas.canary.settings import CanarySettings
from lambdas.canary.state import LOSS_WINDOW_RUNS, CanaryState, WindowEntry
from lib.config import ConfigurationError

ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "sentiment-analyzer-dev-canary",
    "STATE_TABLE": "sentiment-analyzer-dev-state",
    "CANARY_ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:sentiment-analyzer-dev-canary_alerts",
    "CANARY_TRACE_BATCH_SIZE": "10",
    "CANARY_LOSS_THRESHOLD": "0.95",
    "CANARY_READBACK_DELAYS_S": "30,60",
    "CANARY_BACKOFF_BASE_S": "1",
    "CANARY_WEBHOOK_URL": "",
    "INGESTION_FUNCTION_NAME": "sentiment-analyzer-dev-ingestion",
    "CANARY_DASHBOARD_FUNCTION": "sentiment-analyzer-dev-dashboard",
    "CANARY_SSE_FUNCTION": "sentiment-analyzer-dev-sse_streaming",
    "CANARY_PROBE_SECRET_NAME": "sentiment-analyzer-dev-canary_probe",
}
NOW = dt.datetime(2026, 1, 15, 12, 0, tzinfo=dt.UTC)


def client_error(code: str, status: int) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
                       "PutMetricData")


# ---------------------------------------------------------------- settings


@pytest.mark.req("FR-078", "FR-036")
def test_settings_read_exactly_the_stack_map_env() -> None:
    settings = CanarySettings.from_env(ENV)
    assert settings.readback_delays_s == (30.0, 60.0) and settings.backoff_base_s == 1.0
    assert settings.trace_batch_size == 10 and settings.loss_threshold == 0.95
    assert settings.webhook_url is None and settings.ingestion_function_name == "sentiment-analyzer-dev-ingestion"
    assert settings.dashboard_function == "sentiment-analyzer-dev-dashboard"
    assert settings.sse_function == "sentiment-analyzer-dev-sse_streaming"
    assert settings.probe_secret == "sentiment-analyzer-dev-canary_probe"


@pytest.mark.req("FR-080")
@pytest.mark.parametrize("url", ["http://hooks.example.com/x", "ftp://hooks.example.com", "https://", "hooks.example"])
def test_a_webhook_that_is_not_https_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="https"):
        CanarySettings.from_env({**ENV, "CANARY_WEBHOOK_URL": url})


@pytest.mark.parametrize("name, value", [
    ("CANARY_TRACE_BATCH_SIZE", "0"), ("CANARY_TRACE_BATCH_SIZE", "26"), ("CANARY_TRACE_BATCH_SIZE", "2.5"),
    ("CANARY_LOSS_THRESHOLD", "0"), ("CANARY_LOSS_THRESHOLD", "1.5"), ("CANARY_LOSS_THRESHOLD", "nan"),
    ("CANARY_READBACK_DELAYS_S", "30,soon"), ("CANARY_READBACK_DELAYS_S", "-1"),
    ("CANARY_BACKOFF_BASE_S", "inf"), ("STATE_TABLE", ""),
    ("INGESTION_FUNCTION_NAME", "sentiment-analyzer-${env}-ingestion"),
    ("CANARY_DASHBOARD_FUNCTION", "sentiment-analyzer-${env}-dashboard"), ("CANARY_SSE_FUNCTION", ""),
    ("CANARY_PROBE_SECRET_NAME", ""),
])
def test_bad_settings_fail_the_run_with_a_clear_error(name: str, value: str) -> None:
    with pytest.raises(ConfigurationError, match=name):
        CanarySettings.from_env({**ENV, name: value})


# ---------------------------------------------------------------- taxonomy (FR-079)


@pytest.mark.req("FR-079", "SC-035")
@pytest.mark.parametrize("code, status, kind", [
    ("Throttling", 400, ErrorKind.TRANSIENT),
    ("ThrottlingException", 400, ErrorKind.TRANSIENT),
    ("InternalServiceError", 500, ErrorKind.TRANSIENT),
    ("InternalFailure", 500, ErrorKind.TRANSIENT),
    ("ServiceUnavailable", 503, ErrorKind.TRANSIENT),
    ("SomethingNew", 502, ErrorKind.TRANSIENT),
    ("SomethingNew", 429, ErrorKind.TRANSIENT),
    ("AccessDenied", 403, ErrorKind.AUTH),
    ("AccessDeniedException", 400, ErrorKind.AUTH),
    ("NotAuthorized", 403, ErrorKind.AUTH),
    ("InvalidClientTokenId", 403, ErrorKind.AUTH),
    ("ExpiredToken", 400, ErrorKind.AUTH),
    ("SomethingNew", 403, ErrorKind.AUTH),
    ("InvalidParameterValue", 400, ErrorKind.REJECTED),
    ("ResourceNotFoundException", 400, ErrorKind.REJECTED),
])
def test_aws_errors_are_classified_by_code_then_status(code: str, status: int, kind: ErrorKind) -> None:
    assert classify(client_error(code, status)) is kind


@pytest.mark.req("FR-079")
def test_botocore_errors_are_classified_too() -> None:
    assert classify(EndpointConnectionError(endpoint_url="https://x")) is ErrorKind.TRANSIENT
    assert classify(ReadTimeoutError(endpoint_url="https://x")) is ErrorKind.TRANSIENT
    assert classify(NoCredentialsError()) is ErrorKind.AUTH
    assert classify(ParamValidationError(report="bad")) is ErrorKind.REJECTED


# ---------------------------------------------------------------- paging (FR-020, FR-050)


def run_sequence(healths: list[Status], urgent: frozenset[int] = frozenset(), delivered: bool = True
                 ) -> list[tuple[Action, CanaryState]]:
    state, seen = CanaryState(), []
    for index, health in enumerate(healths):
        decision = decide(state, health, urgent=index in urgent)
        state = advance(state, decision, health, delivered, f"run-{index}", NOW + dt.timedelta(minutes=5 * index))
        seen.append((decision.action, state))
    return seen


@pytest.mark.req("FR-020", "FR-050")
def test_two_consecutive_failures_page_once_and_a_healthy_run_sends_one_recovery() -> None:
    F, H, D = Status.FAILED, Status.HEALTHY, Status.DEGRADED
    runs = run_sequence([F, F, F, F, D, F, H, H, F, F])
    assert [action for action, _ in runs] == [Action.NONE, Action.PAGE, Action.NONE, Action.NONE, Action.NONE,
                                              Action.NONE, Action.RECOVER, Action.NONE, Action.NONE, Action.PAGE]
    assert runs[1][1].outage_since == "2026-01-15T12:00:00.000Z"  # since the first failed run
    assert runs[4][1].paged and runs[4][1].consecutive_failures == 0  # degraded: not healed, still paged
    assert not runs[6][1].paged and runs[6][1].outage_since is None


@pytest.mark.req("FR-020")
def test_a_single_failure_between_healthy_runs_never_pages() -> None:
    F, H, D = Status.FAILED, Status.HEALTHY, Status.DEGRADED
    assert all(action is Action.NONE for action, _ in run_sequence([H, F, H, F, D, F, H]))


@pytest.mark.req("FR-079", "SC-035")
def test_credential_or_permission_errors_page_at_once_but_still_only_once() -> None:
    F = Status.FAILED
    assert [action for action, _ in run_sequence([F, F, F], urgent={0, 1, 2})] == [Action.PAGE, Action.NONE,
                                                                                    Action.NONE]


@pytest.mark.req("FR-050")
def test_an_undelivered_page_is_tried_again_and_an_unknown_state_pages() -> None:
    runs = run_sequence([Status.FAILED] * 3, delivered=False)
    assert [action for action, _ in runs] == [Action.NONE, Action.PAGE, Action.PAGE]
    assert decide(None, Status.FAILED, urgent=False).action is Action.PAGE
    assert decide(None, Status.HEALTHY, urgent=False).action is Action.NONE


# ---------------------------------------------------------------- loss window (FR-036)


@pytest.mark.req("FR-036", "SC-014")
def test_the_loss_ratio_is_judged_over_the_last_runs_only() -> None:
    state = CanaryState()
    assert state.loss_ratio is None
    for index, retrieved in enumerate([10, 5, 10, 10]):
        state = state.with_measurement(WindowEntry(f"r{index}", 10, retrieved))
    assert len(state.window) == LOSS_WINDOW_RUNS == 3
    assert state.loss_ratio == pytest.approx(25 / 30)
    assert state.with_measurement(None) is state


def test_the_state_item_round_trips() -> None:
    state = CanaryState(consecutive_failures=2, paged=True, outage_since="2026-01-15T12:00:00.000Z",
                        window=(WindowEntry("a", 10, 9), WindowEntry("b", 10, 10)), last_health="failed",
                        last_run_id="b", version=7)
    item: dict[str, Any] = state.to_item(NOW)
    assert item["pk"] == {"S": "canary"} and item["sk"] == {"S": "state"}
    assert CanaryState.from_item(item) == state
    assert CanaryState.from_item(CanaryState().to_item(NOW)) == CanaryState()


# ---------------------------------------------------------------- read-back timing (FR-078)


@pytest.mark.req("FR-078", "SC-034")
def test_read_back_looks_now_then_after_each_delay() -> None:
    slept: list[float] = []
    readback = Readback((30.0, 60.0), slept.append)
    looks = []
    for attempt in readback.attempts():
        looks.append((attempt, list(slept)))
    assert looks == [(0, []), (1, [30.0]), (2, [30.0, 60.0])] and readback.looks == 3


@pytest.mark.req("FR-078")
def test_read_back_takes_no_wait_that_would_end_past_the_deadline() -> None:
    clock = [100.0]

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    readback = Readback((30.0, 60.0), sleep, deadline=150.0, clock=lambda: clock[0])
    assert list(readback.attempts()) == [0, 1] and clock[0] == 130.0


def test_health_is_the_worst_check_and_maps_to_the_metric_value() -> None:
    assert worst([Status.HEALTHY, Status.DEGRADED]) is Status.DEGRADED
    assert worst([Status.DEGRADED, Status.FAILED, Status.HEALTHY]) is Status.FAILED
    assert worst([]) is Status.HEALTHY
    assert [s.value_metric for s in (Status.HEALTHY, Status.DEGRADED, Status.FAILED)] == [1.0, 0.5, 0.0]


def test_entity_ids_include_embedded_subsegments() -> None:
    document = {"id": "a", "subsegments": [{"id": "b", "subsegments": [{"id": "c"}]}, {"id": "d"}]}
    assert sorted(entity_ids(document)) == ["a", "b", "c", "d"]
