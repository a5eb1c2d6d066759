"""The execution environment's DynamoDB resource: one per process, for every function and module.

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
