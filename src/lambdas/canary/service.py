"""One canary run: probe the real trace paths end to end, check X-Ray and CloudWatch, judge loss
across runs, publish, page if it must.

The run never crashes on an AWS error (FR-018's exemption): each check returns a CheckResult, and
the result names every check that did not pass. Order matters for time: the two end-to-end
probes (`probes`: a batch function and the SSE stream) are invoked first, then the X-Ray API and
CloudWatch probes written, then everything read back, so the waits (FR-078) overlap.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> result = run_canary(CanarySettings.from_env(), run_id=context.aws_request_id)   # doctest: +SKIP
    >>> result.health, result.failed_checks                                             # doctest: +SKIP
    (<Status.FAILED: 'failed'>, ['xray_traces', 'trace_loss'])
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lambdas.canary.alerting import Action, Alerter, Decision, Delivery, advance, decide, iso
from lambdas.canary.checks import (
    CheckName,
    CheckResult,
    CloudWatchRoundTrip,
    PublishedMetrics,
    Status,
    TraceCounts,
    TraceProbe,
    app_metrics_check,
    publish_canary_metrics,
    worst,
)
from lambdas.canary.errors import AwsCallError, ErrorKind, Readback, RetryPolicy
from lambdas.canary.probes import BatchProbe, EndToEndProbe, StreamProbe, probe_metric_data, read_back
from lambdas.canary.settings import CanarySettings
from lambdas.canary.state import CanaryState, StateStore, WindowEntry
from lib.tracing.powertools import lambda_tracer

tracer = lambda_tracer()


@dataclass
class CanaryResult:
    """The handler's response: overall health, every check by name, the probe counts, the alert."""

    run_id: str
    health: Status
    checks: list[CheckResult]
    traces: TraceCounts
    loss_ratio: float | None
    decision: Decision
    delivery: Delivery | None
    published: list[str] = field(default_factory=list)
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)  # by path: trace id, outcome, missing parts

    @property
    def failed_checks(self) -> list[str]:
        return [check.name.value for check in self.checks if check.status is Status.FAILED]

    @property
    def degraded_checks(self) -> list[str]:
        return [check.name.value for check in self.checks if check.status is Status.DEGRADED]

    def as_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "health": self.health.value,
            "health_value": self.health.value_metric,
            "failed_checks": self.failed_checks,
            "degraded_checks": self.degraded_checks,
            "checks": {check.name.value: check.as_dict() for check in self.checks},
            "traces": self.traces.as_dict(),
            "loss_ratio": None if self.loss_ratio is None else round(self.loss_ratio, 4),
            "alert": {"action": self.decision.action.value, "reason": self.decision.reason,
                      "consecutive_failures": self.decision.consecutive_failures,
                      "delivery": self.delivery.as_dict() if self.delivery else None},
            "published_metrics": self.published,
            "probes": self.probes,
        }


@tracer.capture_method(capture_response=False)
def run_canary(settings: CanarySettings, run_id: str, *, sleep: Callable[[float], None] = time.sleep,
               deadline: float | None = None, clock: Callable[[], float] = time.monotonic) -> CanaryResult:
    """One run. `sleep`, `deadline` and `clock` let tests run the back-off without waiting."""
    policy = RetryPolicy(settings.backoff_base_s, sleep)
    readback = Readback(settings.readback_delays_s, sleep, deadline, clock)
    store = StateStore(settings.state_table, policy)
    now = dt.datetime.now(dt.UTC)

    previous: CanaryState | None
    try:
        previous = store.load()
        state_check = CheckResult(CheckName.CANARY_STATE, Status.HEALTHY, "state loaded")
    except AwsCallError as error:
        previous = None
        state_check = CheckResult(CheckName.CANARY_STATE, Status.FAILED,
                                  f"state unreadable: {error.failure.code}", error.failure)

    end_to_end: list[EndToEndProbe] = [BatchProbe(settings, run_id, policy), StreamProbe(settings, run_id, policy)]
    for e2e in end_to_end:
        e2e.start()
    probe = TraceProbe(settings, run_id, policy, readback)
    roundtrip = CloudWatchRoundTrip(settings.function_name, policy, readback)
    probe.submit()
    roundtrip.submit()
    trace_check = probe.verify()
    roundtrip_check = roundtrip.verify()
    app_check = app_metrics_check(settings.ingestion_function_name, policy)
    read_back(end_to_end, policy, readback)
    probe_checks = [e2e.result(readback.looks) for e2e in end_to_end]

    counts = probe.counts
    measured = WindowEntry(run_id, counts.submitted, counts.complete) if counts.measured else None
    window_state = (previous or CanaryState()).with_measurement(measured)
    loss_check = _loss_check(window_state.loss_ratio, settings.loss_threshold)

    checks = [*probe_checks, trace_check, loss_check, roundtrip_check, app_check, state_check]
    published = PublishedMetrics(worst(check.status for check in checks),
                                 counts.completeness if counts.measured else None,
                                 data_loss=loss_check.status is Status.FAILED,
                                 probe_data=probe_metric_data(end_to_end))
    checks.append(publish_canary_metrics(published, policy))
    health = worst(check.status for check in checks)

    urgent = any(check.failure is not None and check.failure.kind is ErrorKind.AUTH for check in checks)
    decision = decide(previous, health, urgent)
    delivery = None
    if decision.action is not Action.NONE:
        subject, payload = _message(settings, run_id, decision, health, checks, counts, window_state, now)
        payload["probes"] = {e2e.spec.path: e2e.as_dict() for e2e in end_to_end}
        delivery = Alerter(settings.alert_topic_arn, settings.webhook_url, policy).send(subject, payload)
        if not delivery.delivered:
            checks.append(CheckResult(CheckName.ALERT_DELIVERY, Status.FAILED,
                                      f"{decision.action.value} not delivered: sns {delivery.sns}, "
                                      f"webhook {delivery.webhook}"))

    next_state = advance(window_state, decision, health, delivery is not None and delivery.delivered, run_id, now)
    try:
        store.save(next_state, now)
    except AwsCallError as error:
        checks.append(CheckResult(CheckName.CANARY_STATE, Status.FAILED,
                                  f"state not saved: {error.failure.code}", error.failure))
    checks = _one_per_name(checks)
    return CanaryResult(run_id, worst(check.status for check in checks), checks, counts, window_state.loss_ratio,
                        decision, delivery, published.names, {e2e.spec.path: e2e.as_dict() for e2e in end_to_end})


def _loss_check(ratio: float | None, threshold: float) -> CheckResult:
    """FR-036: retrieved/submitted over the window against CANARY_LOSS_THRESHOLD."""
    if ratio is None:
        return CheckResult(CheckName.TRACE_LOSS, Status.HEALTHY, "no measured run in the window yet")
    detail = f"retrieved/submitted {ratio:.3f} over the window (threshold {threshold})"
    return CheckResult(CheckName.TRACE_LOSS, Status.FAILED if ratio < threshold else Status.HEALTHY, detail)


def _one_per_name(checks: list[CheckResult]) -> list[CheckResult]:
    """A check reported twice (state read fine, write failed) keeps its worst result."""
    by_name: dict[CheckName, CheckResult] = {}
    for check in checks:
        kept = by_name.get(check.name)
        if kept is None or worst([kept.status, check.status]) is not kept.status:
            by_name[check.name] = check
    return list(by_name.values())


def _message(settings: CanarySettings, run_id: str, decision: Decision, health: Status, checks: list[CheckResult],
             counts: TraceCounts, state: CanaryState, now: dt.datetime) -> tuple[str, dict[str, Any]]:
    """The page (or recovery) an operator reads: what failed, how, since when."""
    failing = [check for check in checks if check.status is not Status.HEALTHY]
    if decision.action is Action.RECOVER:
        subject = f"RECOVERED {settings.function_name}: trace probes, X-Ray and CloudWatch checks pass"
        kind = "canary_recovery"
    else:
        subject = f"FAILED {settings.function_name}: {', '.join(check.name.value for check in failing)}"
        kind = "canary_alert"
    payload = {
        "type": kind,
        "function": settings.function_name,
        "run_id": run_id,
        "at": iso(now),
        "health": health.value,
        "reason": decision.reason,
        "consecutive_failures": decision.consecutive_failures,
        "outage_since": state.outage_since or (iso(now) if health is Status.FAILED else None),
        "checks": {check.name.value: check.as_dict() for check in failing},
        "traces": counts.as_dict(),
        "loss_ratio": state.loss_ratio,
    }
    return subject, payload
