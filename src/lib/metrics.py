"""CloudWatch metrics the application emits, in one catalogue (specs/contracts.md).

Every datum carries the dimension `FunctionName`, so alarms can match it, and no dimension name
is ever repeated (CloudWatch rejects that). A metric counted per something (`MalformedArticles`
per news source) is published twice in one call: with `FunctionName` alone, which its alarm
watches, and with `FunctionName` + the per-dimension (`Source`), to see which one. CloudWatch keeps
each dimension combination as its own metric and never sums across them
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html).
Published with `put_metric_data`, which the batch Lambdas' Tracer records as a CloudWatch subsegment.

Example:
    >>> put_metric(Metric.NEW_ITEMS_INGESTED, 3)   # as the function named by AWS_LAMBDA_FUNCTION_NAME
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_cloudwatch.type_defs import MetricDatumTypeDef

APP_NAMESPACE = "SentimentAnalyzer"
CANARY_NAMESPACE = "SentimentAnalyzer/Canary"
DIMENSION_NAME = "FunctionName"
MAX_DATA_PER_CALL = 1000  # PutMetricData's limit


class Metric(StrEnum):
    """Application metrics (namespace SentimentAnalyzer)."""

    NEW_ITEMS_INGESTED = "NewItemsIngested"
    HIGH_LATENCY_ALERT = "HighLatencyAlert"
    ANALYSIS_ERRORS = "AnalysisErrors"
    STUCK_ITEMS = "StuckItems"
    METRICS_LAMBDA_ERRORS = "MetricsLambdaErrors"
    NOTIFICATION_DELIVERY_FAILURES = "NotificationDeliveryFailures"
    ALERT_EMAILS_CAPPED = "AlertEmailsCapped"
    EVENT_LATENCY_MS = "EventLatencyMs"
    POLL_DURATION_MS = "PollDurationMs"
    CIRCUIT_BREAKER_PERSISTENCE_FAILURE = "CircuitBreakerPersistenceFailure"
    AUDIT_EVENT_PERSISTENCE_FAILURE = "AuditEventPersistenceFailure"
    DOWNSTREAM_NOTIFICATION_FAILURE = "DownstreamNotificationFailure"
    TIMESERIES_FANOUT_PARTIAL_FAILURE = "TimeseriesFanoutPartialFailure"
    SELF_HEALING_ITEM_FETCH_FAILURE = "SelfHealingItemFetchFailure"
    PARALLEL_FETCHER_ERRORS = "ParallelFetcherErrors"
    MALFORMED_ARTICLES = "MalformedArticles"  # also per `Source` (PER_SOURCE_DIMENSION)


PER_SOURCE_DIMENSION = "Source"


class CanaryMetric(StrEnum):
    """The canary's own metrics (namespace SentimentAnalyzer/Canary)."""

    CANARY_HEALTH = "CanaryHealth"
    TRACE_COMPLETENESS = "TraceCompleteness"
    TRACE_DATA_LOSS = "trace_data_loss"
    CANARY_TEST_METRIC = "CanaryTestMetric"
    PROBE_TREE_COMPLETE = "ProbeTreeComplete"  # per ProbePath: 1 when the probe's whole tree arrived
    PROBE_TREE_LOST = "ProbeTreeLost"  # per ProbePath: 1 when nothing of it arrived


@cache
def cloudwatch_client() -> CloudWatchClient:
    """One client per execution environment (created on first use, reused when warm). botocore's, as
    boto3's `client()` makes it, from the environment's one botocore session (lib.aws_session: a session
    of its own would load botocore's data again); made here, so a function that never publishes never pays."""
    from lib.aws_session import botocore_session

    return cast("CloudWatchClient", botocore_session().create_client("cloudwatch"))


def metric_datum(name: str, value: float, unit: str = "Count",
                 per: tuple[str, str] | None = None) -> MetricDatumTypeDef:
    """One datum with this function's `FunctionName` dimension, and `per` (name, value) after it."""
    if per is not None and per[0] == DIMENSION_NAME:
        raise ValueError(f"dimension {DIMENSION_NAME} is already on every datum")
    dimensions = [{"Name": DIMENSION_NAME, "Value": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}]
    if per is not None:
        dimensions.append({"Name": per[0], "Value": per[1]})
    return {
        "MetricName": name,
        "Dimensions": dimensions,  # type: ignore[typeddict-item]
        "Value": float(value),
        "Unit": unit,  # type: ignore[typeddict-item]  # a StandardUnit literal, checked by CloudWatch
    }


def put_metric(metric: Metric, value: float, unit: str = "Count", per: tuple[str, str] | None = None) -> None:
    """Publish one application datum now (failures raise: FR-018); with `per`, the same value also
    with that dimension, in the same call.

    Example (not run: publishes to CloudWatch, needs AWS_LAMBDA_FUNCTION_NAME):
        >>> put_metric(Metric.MALFORMED_ARTICLES, 2, per=(PER_SOURCE_DIMENSION, "tiingo"))  # doctest: +SKIP
    """
    data = [metric_datum(metric, value, unit)]
    if per is not None:
        data.append(metric_datum(metric, value, unit, per))
    cloudwatch_client().put_metric_data(Namespace=APP_NAMESPACE, MetricData=data)


def put_metrics(data: Sequence[MetricDatumTypeDef]) -> None:
    """Publish several data (built with `metric_datum`) in as few calls as the API allows.

    Example:
        >>> put_metrics([metric_datum(Metric.POLL_DURATION_MS, 12.5, "Milliseconds")])
    """
    for start in range(0, len(data), MAX_DATA_PER_CALL):
        cloudwatch_client().put_metric_data(
            Namespace=APP_NAMESPACE, MetricData=list(data[start:start + MAX_DATA_PER_CALL]))
