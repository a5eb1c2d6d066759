"""Alert evaluation and email delivery for one `sentiment_scored` message.

Trigger: the `sentiment_scored` SNS topic (stack.json), not a schedule. Analysis already publishes
each new score there, so a rule fires within seconds of the score, with no table polling and no
"what did I already look at" state, and SNS active tracing carries the analysis trace into this
function (one trace from ingestion to the email, FR-013). Lambda invokes SNS subscribers
asynchronously: a raised error is retried by Lambda (twice) and then lands in the function's
dead-letter queue (`notification_dlq`), so a message whose emails could not be sent is kept, not
lost. SendGrid has no idempotency key, so each rule's email goes through `once.send_once`: at most
one email per (rule, scored item), a retry sends only what did not go out (see `once` for the key
and the window that remains).

Bounds (issue 21): each email first takes one unit of its owner's and its address's daily caps
(`quota`); over either, it is not sent, `AlertEmailsCapped` counts it and the delivery is settled
(a retry does not send it either). A rule only ever mails its owner's verified address (the
dashboard refuses others), so an unconfirmed address gets nothing from this function.

For each message: the ticker's rules (config table, `pk="alert"`) are read and those the score
crosses fire (strictly above / below the threshold); each firing rule gets one email through
SendGrid (`mailer`). Every firing rule is attempted even when an earlier one failed; failures are
then counted (`NotificationDeliveryFailures`, one per email SendGrid did not accept) and raised
together as NotificationDeliveryError: the invocation faults, nothing is swallowed. A rule whose
email another invocation is sending right now (its idempotency record is INPROGRESS) is one of
those failures too, but not counted: the retry finds it sent, or sends it.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> notify(NotificationSettings.from_env(), ScoredMessage(...), seconds_left=lambda: 50.0)  # doctest: +SKIP
    Report(ticker='AAPL', rules=2, fired=1, sent=1)
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from aws_lambda_powertools.utilities import parameters
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyAlreadyInProgressError
from pydantic import BaseModel, ConfigDict, Field
from sendgrid.helpers.mail import Mail

from lambdas.notification.mailer import DeliveryError, RetryPolicy, SendGridMailer
from lambdas.notification.once import AlertDelivery, idempotency_store, send_once
from lambdas.notification.quota import CAPPED_STATUS, EmailCaps, take_email_quota
from lib.alerts import TICKER_PATTERN, AlertRule, AlertTable
from lib.config import ConfigurationError, require_env
from lib.metrics import Metric, put_metric
from lib.sns_events import sns_messages
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer

tracer = lambda_tracer()
logger = lambda_logger()

SECRET_MAX_AGE_S = 300  # the API key is read once per 5 minutes per execution environment
ISO_MS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"
MAX_HEADLINE_CHARS = 2000


class NotificationDeliveryError(RuntimeError):
    """At least one alert email of the message was not delivered (the invocation fails: retry, then DLQ)."""


class ScoredMessage(BaseModel):
    """The `sentiment_scored` topic message (contracts: Messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    published_at: str = Field(pattern=ISO_MS_PATTERN)
    ticker: str = Field(pattern=TICKER_PATTERN)
    headline: str = Field(min_length=1, max_length=MAX_HEADLINE_CHARS)
    label: Literal["positive", "neutral", "negative"]
    score: float = Field(ge=-1, le=1, allow_inf_nan=False, strict=True)  # a number, not "0.5"
    analyzed_at: str = Field(pattern=ISO_MS_PATTERN)


def parse_event(event: Any) -> list[ScoredMessage]:
    """The messages of an SNS → Lambda event; pydantic's ValidationError names what is wrong."""
    return sns_messages(event, ScoredMessage, "scored-item")


@dataclass(frozen=True)
class NotificationSettings:
    config_table: str
    idempotency_table: str
    secret_name: str
    sendgrid_host: str
    from_address: str
    retry: RetryPolicy
    state_table: str
    caps: EmailCaps

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> NotificationSettings:
        source = os.environ if env is None else env
        names = ("CONFIG_TABLE", "IDEMPOTENCY_TABLE", "SENDGRID_SECRET_NAME", "SENDGRID_HOST", "ALERT_FROM_ADDRESS",
                 "SENDGRID_RETRY_DELAYS_S", "SENDGRID_TIMEOUT_S", "STATE_TABLE", "ALERT_EMAILS_PER_OWNER_PER_DAY",
                 "ALERT_EMAILS_PER_ADDRESS_PER_DAY")
        require_env(names, source)
        return cls(source["CONFIG_TABLE"], source["IDEMPOTENCY_TABLE"], source["SENDGRID_SECRET_NAME"],
                   source["SENDGRID_HOST"], source["ALERT_FROM_ADDRESS"], RetryPolicy.from_env(source),
                   source["STATE_TABLE"], EmailCaps.from_env(source))


@dataclass(frozen=True)
class Report:
    ticker: str
    rules: int
    fired: int
    sent: int              # emails this invocation sent
    already_sent: int = 0  # fired rules whose email for this score an earlier invocation sent
    capped: int = 0        # fired rules whose email a daily cap stopped (now or in an earlier invocation)


Outcome = Literal["sent", "already_sent", "capped"]


def sendgrid_api_key(secret_name: str) -> str:
    """The `sendgrid` secret's `api_key` (Powertools Parameters: cached for SECRET_MAX_AGE_S)."""
    secret = parameters.get_secret(secret_name, transform="json", max_age=SECRET_MAX_AGE_S)
    key = secret.get("api_key") if isinstance(secret, dict) else None
    if not isinstance(key, str) or not key:
        raise ConfigurationError(f"secret {secret_name} has no api_key")
    return key


def alert_email(settings: NotificationSettings, rule: AlertRule, message: ScoredMessage) -> Mail:
    subject = (f"{message.ticker} sentiment {message.score:+.2f} ({message.label}) is {rule.direction} "
               f"your threshold {rule.threshold:+.2f}")
    text = "\n".join([
        subject,
        "",
        f"Headline: {message.headline}",
        f"Published: {message.published_at}",
        f"Scored: {message.analyzed_at}",
        "",
        f"Alert rule {rule.alert_id}: {rule.ticker} {rule.direction} {rule.threshold:+.2f}.",
    ])
    return Mail(from_email=settings.from_address, to_emails=rule.email, subject=subject, plain_text_content=text)


@tracer.capture_method(capture_response=False, capture_error=False)
def deliver(mailer: SendGridMailer, settings: NotificationSettings, rule: AlertRule,
            message: ScoredMessage) -> Outcome:
    """One rule's email, at most once per scored item and within the daily caps: its own subsegment,
    holding the idempotency record's and the caps' `dynamodb` calls and one `SendGrid` subsegment per
    attempt (none when already sent or capped)."""
    annotate(tracer, alert_id=rule.alert_id, ticker=rule.ticker)
    delivery = AlertDelivery(rule.alert_id, message.item_id, message.analyzed_at)

    def send() -> tuple[int, int]:
        if not take_email_quota(settings.state_table, settings.caps, rule.owner, rule.email, dt.datetime.now(dt.UTC)):
            return CAPPED_STATUS, 0
        try:
            status = mailer.send(alert_email(settings, rule, message))
        finally:
            annotate(tracer, attempts=mailer.attempts)
        return status, mailer.attempts

    receipt = send_once(idempotency_store(settings.idempotency_table), delivery=delivery, send=send)
    annotate(tracer, already_sent=receipt.replayed)
    if receipt.status == CAPPED_STATUS:
        annotate(tracer, capped=True, attempts=0)
        logger.warning("alert email not sent: a daily cap is reached",
                       extra={"alert_id": rule.alert_id, "ticker": rule.ticker, "item_id": message.item_id})
        return "capped"
    if receipt.replayed:
        annotate(tracer, attempts=0)
        logger.info("alert email already sent for this score: not sent again",
                    extra={"alert_id": rule.alert_id, "ticker": rule.ticker, "item_id": message.item_id})
        return "already_sent"
    logger.info("alert email sent", extra={"alert_id": rule.alert_id, "ticker": rule.ticker, "status": receipt.status,
                                           "attempts": receipt.attempts})
    return "sent"


@tracer.capture_method(capture_response=False, capture_error=False)
def notify(settings: NotificationSettings, message: ScoredMessage, seconds_left: Callable[[], float]) -> Report:
    rules = AlertTable(settings.config_table).all(ticker=message.ticker)
    fired = [rule for rule in rules if rule.matches(message.score)]
    annotate(tracer, ticker=message.ticker, rules=len(rules), fired=len(fired))
    if not fired:
        return Report(message.ticker, len(rules), 0, 0)
    mailer = SendGridMailer(tracer, sendgrid_api_key(settings.secret_name), settings.sendgrid_host, settings.retry,
                            seconds_left=seconds_left)
    failures: list[tuple[AlertRule, DeliveryError | IdempotencyAlreadyInProgressError]] = []
    outcomes: list[Outcome] = []
    for rule in fired:
        try:
            outcomes.append(deliver(mailer, settings, rule, message))
        # The other rules still get their email; all failures are raised below. Another invocation
        # holding this rule's record INPROGRESS is not a failed email: the retry settles it.
        except (DeliveryError, IdempotencyAlreadyInProgressError) as error:
            failures.append((rule, error))
            logger.warning("alert email not delivered", extra={"alert_id": rule.alert_id, "ticker": rule.ticker,
                                                               "error_type": type(error).__name__, "error": str(error)})
    already_sent, capped = outcomes.count("already_sent"), outcomes.count("capped")
    sent = outcomes.count("sent")
    annotate(tracer, sent=sent, already_sent=already_sent, capped=capped, failed=len(failures))
    if capped:
        put_metric(Metric.ALERT_EMAILS_CAPPED, capped)
    undelivered = sum(isinstance(error, DeliveryError) for _, error in failures)
    if undelivered:
        put_metric(Metric.NOTIFICATION_DELIVERY_FAILURES, undelivered)
    if failures:
        summary = "; ".join(f"alert {rule.alert_id}: {type(error).__name__}: {error}" for rule, error in failures)
        raise NotificationDeliveryError(
            f"{len(failures)} of {len(fired)} alert emails for item {message.item_id} not delivered: {summary}"
        ) from failures[0][1]
    return Report(message.ticker, len(rules), len(fired), sent, already_sent, capped)
