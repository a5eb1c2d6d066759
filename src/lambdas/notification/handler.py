"""Notification Lambda handler: an SNS event of `sentiment_scored` messages in, alert emails out.

A malformed event raises (pydantic's ValidationError) before anything is read or sent; a failed
delivery raises NotificationDeliveryError (see lambdas.notification.service): Lambda retries the
asynchronous invocation, then the message goes to the function's dead-letter queue.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> lambda_handler(sns_event, context)   # doctest: +SKIP
    {'notifications': [{'ticker': 'AAPL', 'rules': 2, 'fired': 1, 'sent': 1}]}
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lambdas.notification.once import IDEMPOTENCY
from lambdas.notification.service import NotificationSettings, notify, parse_event
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer, traced_handler

tracer = lambda_tracer()
logger = lambda_logger()


@traced_handler(tracer)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    messages = parse_event(event)
    settings = NotificationSettings.from_env()
    # An INPROGRESS idempotency record expires with this invocation's deadline, so a retry after a
    # timeout is not locked out for the record's whole lifetime (Powertools: "Lambda timeouts").
    IDEMPOTENCY.register_lambda_context(context)
    reports = [notify(settings, message, seconds_left=lambda: context.get_remaining_time_in_millis() / 1000)
               for message in messages]
    annotate(tracer, messages=len(reports), emails_sent=sum(report.sent for report in reports))
    return {"notifications": [asdict(report) for report in reports]}
