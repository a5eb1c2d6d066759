"""The DynamoDB resource for the dashboard, notification and metrics functions.

`lib.news.store` has its own, but importing it loads VADER (`lib.news.sentiment`), which only the
analysis package carries; these functions must import without it.

Example:
    >>> table = dynamodb().Table(os.environ["CONFIG_TABLE"])   # doctest: +SKIP
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBServiceResource


@cache
def dynamodb() -> DynamoDBServiceResource:
    """One resource per execution environment, created on first use (boto3 reads AWS_ENDPOINT_URL then)."""
    return boto3.resource("dynamodb")


def is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"
