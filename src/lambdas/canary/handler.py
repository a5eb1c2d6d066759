"""Canary Lambda handler: one scheduled run (EventBridge, every 5 minutes; the event carries nothing).

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> lambda_handler({"source": "aws.events"}, context)   # doctest: +SKIP
    {'health': 'healthy', 'failed_checks': [], ...}
"""

from __future__ import annotations

import time
from typing import Any

from lambdas.canary.service import run_canary
from lambdas.canary.settings import CanarySettings
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer, traced_handler

tracer = lambda_tracer()
logger = lambda_logger()

REPORT_RESERVE_S = 30.0  # read-back waits stop early enough to publish, page and save state


@traced_handler(tracer)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - REPORT_RESERVE_S
    result = run_canary(CanarySettings.from_env(), context.aws_request_id, deadline=deadline)
    annotate(tracer, canary_health=result.health.value, canary_failed_checks=",".join(result.failed_checks) or "none",
             trace_completeness=round(result.traces.completeness, 4))
    report = result.as_dict()
    if result.failed_checks or result.degraded_checks:
        logger.warning("canary run not healthy", extra=report)
    else:
        logger.info("canary run healthy", extra=report)
    return report
