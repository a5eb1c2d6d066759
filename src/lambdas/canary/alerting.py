"""Paging out of band (FR-050, FR-080) and when to page (FR-020).

- Channels: a direct SNS publish to the canary's own topic (never only a CloudWatch alarm: the
  alarm path is part of what the canary watches), plus an optional HTTPS webhook.
- When: after two consecutive failed runs (a cold start's slow first read is no outage), at once
  when AWS rejected the canary's credentials or permissions (FR-079), and never twice for the same
  outage; a recovery message when a paged outage heals. A page that no channel delivered is not
  counted as sent, so the next failed run tries again.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> decision = decide(previous_state, Status.FAILED, urgent=False)       # doctest: +SKIP
    >>> Alerter(topic_arn, webhook_url, policy).send(subject, payload)       # doctest: +SKIP
"""

from __future__ import annotations

import datetime as dt
import json
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from enum import StrEnum
from http.client import HTTPException
from typing import Any

from lambdas.canary import clients
from lambdas.canary.checks import Status
from lambdas.canary.errors import AwsCallError, RetryPolicy, call_aws
from lambdas.canary.state import CanaryState
from lib.tracing.bounds import truncate_message
from lib.tracing.powertools import annotate, lambda_tracer

tracer = lambda_tracer()

PAGE_AFTER_FAILED_RUNS = 2  # FR-020
WEBHOOK_TIMEOUT_S = 3.0
SUBJECT_LIMIT = 100  # SNS subject: at most 100 printable ASCII characters


class Action(StrEnum):
    PAGE = "page"
    RECOVER = "recover"
    NONE = "none"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str
    consecutive_failures: int


def decide(previous: CanaryState | None, health: Status, urgent: bool) -> Decision:
    """What this run's health means for paging. `previous` is None when the state could not be read:
    with no way to tell whether the outage was already paged, a failed run pages (at least once)."""
    state = previous or CanaryState()
    if health is not Status.FAILED:
        if health is Status.HEALTHY and state.paged:
            return Decision(Action.RECOVER, "healthy again after a paged outage", 0)
        return Decision(Action.NONE, f"{health.value}: nothing to page", 0)
    streak = state.consecutive_failures + 1
    if state.paged:
        return Decision(Action.NONE, "outage already paged", streak)
    if urgent:
        return Decision(Action.PAGE, "AWS rejected the canary's credentials or permissions", streak)
    if previous is None:
        return Decision(Action.PAGE, "canary state unreadable: cannot tell whether this outage was paged", streak)
    if streak >= PAGE_AFTER_FAILED_RUNS:
        return Decision(Action.PAGE, f"{streak} consecutive failed runs", streak)
    return Decision(Action.NONE, f"failed run {streak} of {PAGE_AFTER_FAILED_RUNS} before paging", streak)


def advance(previous: CanaryState, decision: Decision, health: Status, delivered: bool, run_id: str,
            now: dt.datetime) -> CanaryState:
    """The state after this run: streak, paged flag (only for a page a channel delivered), outage start."""
    paged = previous.paged
    if decision.action is Action.PAGE and delivered:
        paged = True
    elif decision.action is Action.RECOVER and delivered:
        paged = False
    outage_since = previous.outage_since
    if health is Status.FAILED and outage_since is None:
        outage_since = iso(now)
    elif health is not Status.FAILED and not paged:
        outage_since = None
    return replace(previous, consecutive_failures=decision.consecutive_failures, paged=paged,
                   outage_since=outage_since, last_health=health.value, last_run_id=run_id)


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Delivery:
    """Per channel: `sent`, `off`, or what went wrong."""

    sns: str
    webhook: str

    @property
    def delivered(self) -> bool:
        return "sent" in (self.sns, self.webhook)

    def as_dict(self) -> dict[str, Any]:
        return {"sns": self.sns, "webhook": self.webhook, "delivered": self.delivered}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect could take the alert off HTTPS: treat it as a failed delivery."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class Alerter:
    def __init__(self, topic_arn: str, webhook_url: str | None, policy: RetryPolicy):
        self._topic_arn = topic_arn
        self._webhook_url = webhook_url
        self._policy = policy

    @tracer.capture_method(capture_response=False)
    def send(self, subject: str, payload: dict[str, Any]) -> Delivery:
        """Both channels, each on its own: one failing never stops the other. Never raises for AWS or HTTP."""
        body = json.dumps(payload, indent=2, sort_keys=True)
        delivery = Delivery(sns=self._publish(subject, body), webhook=self._post(body))
        annotate(tracer, alert_kind=str(payload.get("type")), alert_sns=delivery.sns[:100],
                 alert_webhook=delivery.webhook[:100])
        return delivery

    def _publish(self, subject: str, body: str) -> str:
        clean = "".join(ch if 32 <= ord(ch) < 127 else "?" for ch in subject)[:SUBJECT_LIMIT]
        try:
            call_aws("sns:Publish", lambda: clients.sns().publish(TopicArn=self._topic_arn, Subject=clean,
                                                                  Message=body), self._policy)
        except AwsCallError as error:
            return f"{error.failure.code} ({error.failure.kind})"
        return "sent"

    def _post(self, body: str) -> str:
        """POST the alert as JSON (HTTPS only, verified certificate, short timeout, no redirects).

        Deliberately plain urllib, which the Tracer does not patch: a webhook URL often carries its
        secret in the path, and a traced HTTP call would store the URL in the trace.
        """
        if self._webhook_url is None:
            return "off"
        request = urllib.request.Request(self._webhook_url, data=body.encode(), method="POST",
                                         headers={"Content-Type": "application/json",
                                                  "User-Agent": "sentiment-analyzer-canary"})
        opener = urllib.request.build_opener(_NoRedirect(),
                                             urllib.request.HTTPSHandler(context=ssl.create_default_context()))
        try:
            with opener.open(request, timeout=WEBHOOK_TIMEOUT_S) as response:
                status = int(response.status)
        except urllib.error.HTTPError as error:
            return f"HTTP {error.code}"
        except (urllib.error.URLError, HTTPException, OSError) as error:
            reason = getattr(error, "reason", error)
            return truncate_message(f"{type(error).__name__}: {reason}", 200)
        return "sent" if 200 <= status < 300 else f"HTTP {status}"
