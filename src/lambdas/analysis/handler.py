"""Analysis Lambda handler: parse the SNS event, analyse each message's item, return the outcomes.

A malformed event or message raises (pydantic's ValidationError) before anything is written;
every failed invocation counts one `AnalysisErrors` and is re-raised (SNS retries, then the DLQ).

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> lambda_handler(sns_event, context)   # doctest: +SKIP
    {'items': [{'item_id': '...', 'duplicate': False, 'label': 'positive', ...}]}
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from lambdas.analysis.service import AnalysisSettings, analyse, parse_event
from lib.metrics import Metric, put_metric
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer, traced_handler

tracer = lambda_tracer()
logger = lambda_logger()


@traced_handler(tracer)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    try:
        messages = parse_event(event)
        settings = AnalysisSettings.from_env()
        outcomes = [analyse(settings, message) for message in messages]
    except Exception as error:  # counted, then re-raised: Lambda records it, SNS retries / dead-letters
        annotate(tracer, analysis_error=type(error).__name__)
        put_metric(Metric.ANALYSIS_ERRORS, 1)
        raise
    annotate(tracer, items=len(outcomes), duplicates=sum(o.duplicate for o in outcomes))
    logger.info("analysed", extra={"outcomes": [asdict(o) for o in outcomes]})
    return {"items": [asdict(o) for o in outcomes]}
