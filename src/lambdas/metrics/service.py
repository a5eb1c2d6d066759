"""The monitor of monitors: count the news items stuck `pending` and publish `StuckItems`.

An item is stuck when it has been `pending` for longer than `STUCK_AFTER_MINUTES` (analysis never
marked it `analyzed`). The count comes from the `status-index` GSI (status, status_changed_at) with
`Select=COUNT`, page by page, so no item is read. `StuckItems` is published on every run, 0
included: its alarm treats missing data as breaching, so a silent metrics Lambda pages too.
Each step is its own subsegment; its DynamoDB Query and CloudWatch PutMetricData calls are
subsegments below them (the Tracer's botocore patch: FR-003, FR-004).

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> run(MetricsSettings.from_env(), dt.datetime.now(dt.UTC))   # doctest: +SKIP
    {'stuck_items': 0, 'stuck_after_minutes': 5, 'cutoff': '2026-01-05T14:25:01.234Z'}
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from boto3.dynamodb.conditions import Key

from lib.config import ConfigurationError, require_env
from lib.metrics import Metric, put_metric
from lib.news.model import ItemStatus, iso_ms
from lib.tables import dynamodb, query_pages
from lib.tracing.powertools import annotate, lambda_logger, lambda_tracer

tracer = lambda_tracer()
logger = lambda_logger()

STATUS_INDEX = "status-index"


@dataclass(frozen=True)
class MetricsSettings:
    news_table: str
    stuck_after: dt.timedelta

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MetricsSettings:
        source = os.environ if env is None else env
        table = require_env(("NEWS_TABLE",), source)["NEWS_TABLE"]
        minutes = source.get("STUCK_AFTER_MINUTES", "")
        if not minutes.isdigit() or int(minutes) < 1:
            raise ConfigurationError(
                f"STUCK_AFTER_MINUTES must be a whole number of minutes >= 1, not {minutes[:20]!r}")
        return cls(table, dt.timedelta(minutes=int(minutes)))


@tracer.capture_method(capture_response=False)
def count_stuck_items(table_name: str, cutoff: dt.datetime) -> int:
    """Items `pending` since before `cutoff` (status-index, counted by DynamoDB, every page)."""
    kwargs: dict[str, Any] = {
        "IndexName": STATUS_INDEX, "Select": "COUNT",
        "KeyConditionExpression": Key("status").eq(str(ItemStatus.PENDING))
        & Key("status_changed_at").lt(iso_ms(cutoff)),
    }
    count = pages = 0
    for page in query_pages(dynamodb().Table(table_name), **kwargs):
        count += int(page["Count"])
        pages += 1
    annotate(tracer, stuck_items=count, query_pages=pages)
    return count


@tracer.capture_method(capture_response=False)
def publish_stuck_items(count: int) -> None:
    put_metric(Metric.STUCK_ITEMS, count)


def run(settings: MetricsSettings, now: dt.datetime) -> dict[str, Any]:
    cutoff = now - settings.stuck_after
    count = count_stuck_items(settings.news_table, cutoff)
    publish_stuck_items(count)
    if count:
        logger.warning("news items stuck pending", extra={"stuck_items": count, "cutoff": iso_ms(cutoff)})
    return {"stuck_items": count, "stuck_after_minutes": int(settings.stuck_after.total_seconds() // 60),
            "cutoff": iso_ms(cutoff)}
