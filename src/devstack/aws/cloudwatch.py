"""Reading the application's CloudWatch metrics back (namespace SentimentAnalyzer, one FunctionName
dimension), for the demo's checks and the tests: the one place that queries them.

`GetMetricStatistics` with one-minute periods over a window from `since` (default: three hours
ago) to an hour ahead, so a datapoint timestamped by a slightly skewed clock still counts:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html.

Example (not run: needs the stack's metrics):
    >>> metric_sum("AnalysisErrors", "sentiment-analyzer-local-analysis")       # doctest: +SKIP
    1.0
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import boto3

from lib.metrics import APP_NAMESPACE

DEFAULT_LOOKBACK = dt.timedelta(hours=3)
CLOCK_SLACK = dt.timedelta(minutes=5)


def _datapoints(metric: str, function_name: str, statistic: str, since: dt.datetime | None) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    start = (since or now - DEFAULT_LOOKBACK) - CLOCK_SLACK
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=APP_NAMESPACE, MetricName=metric, Dimensions=[{"Name": "FunctionName", "Value": function_name}],
        StartTime=start, EndTime=now + dt.timedelta(hours=1), Period=60, Statistics=[statistic])
    return list(stats["Datapoints"])


def metric_sum(metric: str, function_name: str, since: dt.datetime | None = None) -> float:
    """The sum of `metric` for the function (its physical name) since `since`."""
    return float(sum(point["Sum"] for point in _datapoints(metric, function_name, "Sum", since)))


def metric_samples(metric: str, function_name: str, since: dt.datetime | None = None) -> int:
    """How many values of `metric` the function put since `since` (a count of 0 is a value too)."""
    return int(sum(point["SampleCount"] for point in _datapoints(metric, function_name, "SampleCount", since)))


def metric_dimensions(metric: str) -> list[list[dict[str, str]]]:
    """The dimension sets `metric` was put with (ListMetrics)."""
    listed = boto3.client("cloudwatch").list_metrics(Namespace=APP_NAMESPACE, MetricName=metric)["Metrics"]
    return [entry["Dimensions"] for entry in listed]
