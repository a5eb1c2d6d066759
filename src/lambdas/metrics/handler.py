"""Metrics Lambda handler: one scheduled run (the EventBridge event carries nothing the run needs).

When its own work fails, the run counts one `MetricsLambdaErrors` and re-raises: the invocation
faults (Lambda's `Errors` alarm and X-Ray see it); never a 200 that hides a blind monitor.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> lambda_handler({"source": "aws.events", "detail-type": "Scheduled Event"}, context)   # doctest: +SKIP
    {'stuck_items': 0, 'stuck_after_minutes': 5, 'cutoff': '...'}
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from lambdas.metrics.service import MetricsSettings, run
from lib.metrics import Metric, put_metric
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer, traced_handler

tracer = lambda_tracer()
logger = lambda_logger()


@traced_handler(tracer)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        report = run(MetricsSettings.from_env(), dt.datetime.now(dt.UTC))
    except Exception as error:  # counted, then re-raised: the invocation faults
        annotate(tracer, metrics_error=type(error).__name__)
        put_metric(Metric.METRICS_LAMBDA_ERRORS, 1)
        raise
    annotate(tracer, stuck_items=report["stuck_items"])
    logger.info("metrics run finished", extra=report)
    return report
