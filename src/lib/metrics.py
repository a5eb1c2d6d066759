"""CloudWatch metrics the application emits, in one catalogue (specs/contracts.md).

Every datum carries exactly one dimension, `FunctionName`, so alarms can match it and no
dimension name is ever repeated (CloudWatch rejects that). Published with `put_metric_data`,
which the batch Lambdas' Tracer records as a CloudWatch subsegment.

Example:
    >>> put_metric(Metric.NEW_ITEMS_INGESTED, 3)  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING

import boto3

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
    CONNECTION_ACQUIRE_FAILURES = "ConnectionAcquireFailures"
    EVENT_LATENCY_MS = "EventLatencyMs"
    POLL_DURATION_MS = "PollDurationMs"
    CIRCUIT_BREAKER_PERSISTENCE_FAILURE = "CircuitBreakerPersistenceFailure"
    AUDIT_EVENT_PERSISTENCE_FAILURE = "AuditEventPersistenceFailure"
    DOWNSTREAM_NOTIFICATION_FAILURE = "DownstreamNotificationFailure"
    TIMESERIES_FANOUT_PARTIAL_FAILURE = "TimeseriesFanoutPartialFailure"
    SELF_HEALING_ITEM_FETCH_FAILURE = "SelfHealingItemFetchFailure"
    PARALLEL_FETCHER_ERRORS = "ParallelFetcherErrors"


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
    """One client per execution environment (created on first use, reused when warm)."""
    return boto3.client("cloudwatch")


def metric_datum(name: str, value: float, unit: str = "Count") -> MetricDatumTypeDef:
    """One datum with the single `FunctionName` dimension of this function."""
    return {
        "MetricName": name,
        "Dimensions": [{"Name": DIMENSION_NAME, "Value": os.environ["AWS_LAMBDA_FUNCTION_NAME"]}],
        "Value": float(value),
        "Unit": unit,  # type: ignore[typeddict-item]  # a StandardUnit literal, checked by CloudWatch
    }


def put_metric(metric: Metric, value: float, unit: str = "Count") -> None:
    """Publish one application datum now (failures raise: FR-018)."""
    cloudwatch_client().put_metric_data(Namespace=APP_NAMESPACE, MetricData=[metric_datum(metric, value, unit)])


def put_metrics(data: Sequence[MetricDatumTypeDef]) -> None:
    """Publish several data (built with `metric_datum`) in as few calls as the API allows.

    Example:
        >>> put_metrics([metric_datum(Metric.POLL_DURATION_MS, 12.5, "Milliseconds")])  # doctest: +SKIP
    """
    for start in range(0, len(data), MAX_DATA_PER_CALL):
        cloudwatch_client().put_metric_data(
            Namespace=APP_NAMESPACE, MetricData=list(data[start:start + MAX_DATA_PER_CALL]))
