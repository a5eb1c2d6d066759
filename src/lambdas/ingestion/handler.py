"""Ingestion Lambda handler: one scheduled run (the event carries nothing the run needs).

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> lambda_handler({"source": "aws.events"}, context)   # doctest: +SKIP
    {'tickers': 3, 'new_items': 12, ...}
"""

from __future__ import annotations

from typing import Any

from lambdas.ingestion.service import IngestionSettings, run_ingestion
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer, traced_handler

tracer = lambda_tracer()
logger = lambda_logger()


@traced_handler(tracer)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    report = run_ingestion(IngestionSettings.from_env(), context.aws_request_id)
    annotate(tracer, new_items=report.new_items, duplicates=report.duplicates,
             failed_sources=len(report.failed_sources), publish_failures=report.publish_failures,
             self_healed=report.self_healed)
    logger.info("ingestion run finished", extra=report.as_dict())
    return report.as_dict()
