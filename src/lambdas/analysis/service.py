"""Scoring one news item: VADER, `pending` → `analyzed`, time-series fan-out, hand-off to notification.

Idempotent: the status change is conditional (`pending` → `analyzed`), and only the delivery
that made it fans out and publishes, so a second delivery of the same message counts nothing
twice. Silent failure path 5 (fan-out batch write) lives here; the publish to the scored topic
is the downstream-publish path (4). A message that names no stored item raises: Lambda records
it, SNS retries and then dead-letters it.

The fan-out is one `TransactWriteItems` of four atomic ADDs (one per resolution).
BatchWriteItem cannot add to a counter (it only puts whole rows), and read-then-put loses
concurrent increments; the transaction is all-or-nothing (no partial bucket set) and its
ClientRequestToken makes a retry of an ambiguous failure safe. Retryable failures (throttling,
transaction conflicts with a concurrent item of the same ticker) are retried a bounded number of
times, then the path records the failure and the run goes on.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> outcome = analyse(AnalysisSettings.from_env(), NewsItemMessage(item_id=..., published_at=...))  # doctest: +SKIP
    >>> outcome.label, outcome.duplicate                                                               # doctest: +SKIP
    ('positive', False)
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from lib.config import require_env
from lib.news.model import ItemStatus, iso_ms
from lib.news.sentiment import Sentiment, score
from lib.news.store import AWS_ERRORS, NewsTable, TimeseriesTable, sns_client
from lib.sns_events import sns_messages
from lib.tracing.header import current_trace_id
from lib.tracing.powertools import SilentFailurePath, annotate, lambda_logger, lambda_tracer, silent_failure

tracer = lambda_tracer()
logger = lambda_logger()

FANOUT_ATTEMPTS = 3
FANOUT_BACKOFF_S = 0.05
_RETRYABLE_CODES = frozenset({
    "ThrottlingException", "ProvisionedThroughputExceededException", "RequestLimitExceeded",
    "InternalServerError", "TransactionInProgressException",
})
_RETRYABLE_CANCELLATIONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})
ISO_MS_PATTERN = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"


class ItemNotFoundError(LookupError):
    """The message names an item the news table does not hold."""


class NewsItemMessage(BaseModel):
    """The `news_items` topic message (contracts: Messages)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    item_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    published_at: str = Field(pattern=ISO_MS_PATTERN)


def parse_event(event: Any) -> list[NewsItemMessage]:
    """The messages of an SNS → Lambda event; pydantic's ValidationError names what is wrong."""
    return sns_messages(event, NewsItemMessage, "news item")


@dataclass(frozen=True)
class AnalysisSettings:
    news_table: str
    timeseries_table: str
    scored_topic_arn: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> AnalysisSettings:
        source = os.environ if env is None else env
        require_env(("NEWS_TABLE", "TIMESERIES_TABLE", "SCORED_TOPIC_ARN"), source)
        return cls(source["NEWS_TABLE"], source["TIMESERIES_TABLE"], source["SCORED_TOPIC_ARN"])


@dataclass(frozen=True)
class Outcome:
    item_id: str
    duplicate: bool
    label: str | None = None
    score: float | None = None
    fanout_failed: bool = False
    publish_failed: bool = False


class FanoutFailedError(RuntimeError):
    """The item's buckets could not be written within the bounded retries."""


def _retryable(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    if code == "TransactionCanceledException":
        reasons = {reason.get("Code") for reason in error.response.get("CancellationReasons", [])}
        return bool(reasons & _RETRYABLE_CANCELLATIONS) and reasons <= _RETRYABLE_CANCELLATIONS | {"None", None}
    return code in _RETRYABLE_CODES


def fan_out(timeseries: TimeseriesTable, item_id: str, ticker: str, published_at: str, sentiment: Sentiment) -> bool:
    """Silent path 5: add the score to the item's 1m/5m/1h/24h buckets. Returns True when it failed."""
    updates = timeseries.fanout_updates(ticker, published_at, sentiment)
    with silent_failure(tracer, SilentFailurePath.TIMESERIES_FANOUT,
                        handles=(FanoutFailedError, BotoCoreError)) as outcome:
        for attempt in range(1, FANOUT_ATTEMPTS + 1):
            annotate(tracer, fanout_attempts=attempt, bucket_count=len(updates))
            try:
                timeseries.write_fanout(updates, idempotency_token=item_id)
                break
            except ClientError as error:  # recorded on the DynamoDB subsegment; retried or raised below
                if attempt == FANOUT_ATTEMPTS or not _retryable(error):
                    raise FanoutFailedError(
                        f"{len(updates)} buckets of item {item_id} not written after {attempt} attempt(s): "
                        f"{error}") from error
                time.sleep(FANOUT_BACKOFF_S * 2 ** (attempt - 1) * (1 + random.random()))
    return outcome.failed


def publish_scored(topic_arn: str, message: Mapping[str, Any]) -> bool:
    """The hand-off to notification (silent path 4): the item is already analysed, so a retry by SNS
    would find it done; the failure is recorded and counted instead. Returns True when it failed."""
    with silent_failure(tracer, SilentFailurePath.SNS_PUBLISH, handles=AWS_ERRORS) as outcome:
        sns_client().publish(TopicArn=topic_arn, Message=json.dumps(message, separators=(",", ":")))
    return outcome.failed


@tracer.capture_method(capture_response=False)
def analyse(settings: AnalysisSettings, message: NewsItemMessage) -> Outcome:
    news = NewsTable(settings.news_table)
    item = news.get(message.item_id, message.published_at)
    if item is None:
        raise ItemNotFoundError(f"no news item {message.item_id} published at {message.published_at}")
    annotate(tracer, ticker=str(item["ticker"]), news_source=str(item["source"]))
    if item["status"] != ItemStatus.PENDING:
        annotate(tracer, duplicate_delivery=True)
        logger.info("item already analysed: duplicate delivery", extra={"item_id": message.item_id})
        return Outcome(message.item_id, duplicate=True)

    sentiment = score(str(item["headline"]), str(item.get("summary") or ""))
    now = dt.datetime.now(dt.UTC)
    if not news.mark_analyzed(message.item_id, message.published_at, sentiment, now, current_trace_id()):
        annotate(tracer, duplicate_delivery=True)  # a concurrent delivery got there first
        return Outcome(message.item_id, duplicate=True)
    annotate(tracer, duplicate_delivery=False, sentiment_label=sentiment.label)
    news.announce_analysed(iso_ms(now))  # after the item: a stream that sees the marker finds it

    fanout_failed = fan_out(TimeseriesTable(settings.timeseries_table), message.item_id, str(item["ticker"]),
                            message.published_at, sentiment)
    publish_failed = publish_scored(settings.scored_topic_arn, {
        "item_id": message.item_id, "published_at": message.published_at, "ticker": item["ticker"],
        "headline": item["headline"], "label": sentiment.label, "score": sentiment.score,
        "analyzed_at": iso_ms(now),
    })
    return Outcome(message.item_id, False, sentiment.label, sentiment.score, fanout_failed, publish_failed)
