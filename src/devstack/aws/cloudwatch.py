"""Reading the application's CloudWatch metrics back (namespace SentimentAnalyzer, dimension
FunctionName, and a second one for a metric also counted per something), for the demo's checks and
the tests: the one place that queries them.

`GetMetricStatistics` with one-minute periods over a window from `since` (default: three hours
ago) to an hour ahead, so a datapoint timestamped by a slightly skewed clock still counts:
https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_GetMetricStatistics.html.

CloudWatch matches the dimensions exactly ("you must specify the same dimensions that were used
when the metrics were created", same page): a metric published with FunctionName and, in the same
call, with FunctionName + Source (`lib.metrics.put_metric(..., per=...)`) is two metrics, and a
FunctionName-only read gets the first. moto (5.x, `get_metric_statistics`) sums every datum whose
dimensions *include* the queried ones, so that read counts each value twice there. `per` reads the
per-source datum, whose dimension set no datum extends: the same answer on moto and on AWS.

Example (not run: needs the stack's metrics):
    >>> metric_sum("AnalysisErrors", "sentiment-analyzer-local-analysis")       # doctest: +SKIP
    1.0
    >>> metric_sum("MalformedArticles", "sentiment-analyzer-local-ingestion",   # doctest: +SKIP
    ...            per=("Source", "tiingo"))
    1.0
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import boto3

from lib.metrics import APP_NAMESPACE

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch.type_defs import DimensionTypeDef

DEFAULT_LOOKBACK = dt.timedelta(hours=3)
CLOCK_SLACK = dt.timedelta(minutes=5)


def _datapoints(metric: str, function_name: str, statistic: str, since: dt.datetime | None,
                per: tuple[str, str] | None = None, namespace: str = APP_NAMESPACE) -> list[dict[str, Any]]:
    now = dt.datetime.now(dt.UTC)
    start = (since or now - DEFAULT_LOOKBACK) - CLOCK_SLACK
    dimensions: list[DimensionTypeDef] = [{"Name": "FunctionName", "Value": function_name}]
    if per is not None:
        dimensions.append({"Name": per[0], "Value": per[1]})
    stats = boto3.client("cloudwatch").get_metric_statistics(
        Namespace=namespace, MetricName=metric, Dimensions=dimensions,
        StartTime=start, EndTime=now + dt.timedelta(hours=1), Period=60, Statistics=[statistic])
    return list(stats["Datapoints"])


def metric_sum(metric: str, function_name: str, since: dt.datetime | None = None,
               per: tuple[str, str] | None = None, namespace: str = APP_NAMESPACE) -> float:
    """The sum of `metric` for the function (its physical name) since `since`; with `per` (a dimension
    name and value, as `put_metric` takes it), of the datum published with that dimension as well.
    `namespace`: another than the application's (the canary's, `lib.metrics.CANARY_NAMESPACE`)."""
    return float(sum(point["Sum"] for point in _datapoints(metric, function_name, "Sum", since, per, namespace)))


def metric_samples(metric: str, function_name: str, since: dt.datetime | None = None,
                   per: tuple[str, str] | None = None, namespace: str = APP_NAMESPACE) -> int:
    """How many values of `metric` the function put since `since` (a count of 0 is a value too)."""
    return int(sum(point["SampleCount"]
                   for point in _datapoints(metric, function_name, "SampleCount", since, per, namespace)))


def metric_dimensions(metric: str) -> list[list[dict[str, str]]]:
    """The dimension sets `metric` was put with (ListMetrics)."""
    listed = boto3.client("cloudwatch").list_metrics(Namespace=APP_NAMESPACE, MetricName=metric)["Metrics"]
    return [entry["Dimensions"] for entry in listed]
