"""The execution environment's DynamoDB resource: one per process, for every function and module.

Example:
    >>> import os
    >>> table = dynamodb().Table(os.environ["CONFIG_TABLE"])
    >>> table.table_status
    'ACTIVE'
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBServiceResource
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_dynamodb.type_defs import QueryOutputTableTypeDef


@cache
def dynamodb() -> DynamoDBServiceResource:
    """One resource per execution environment, created on first use (boto3 reads AWS_ENDPOINT_URL then)."""
    return boto3.resource("dynamodb")


def is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


def query_pages(table: Table, **query: Any) -> Iterator[QueryOutputTableTypeDef]:
    """Every page of one `Table.query`, following `LastEvaluatedKey`, fetched as they are read.

    Example:
        >>> import os
        >>> from boto3.dynamodb.conditions import Key
        >>> table = dynamodb().Table(os.environ["CONFIG_TABLE"])
        >>> rows = [row for page in query_pages(table, KeyConditionExpression=Key("pk").eq("ticker"))
        ...         for row in page["Items"]]
        >>> all(row["pk"] == "ticker" for row in rows)
        True
    """
    while True:
        page = table.query(**query)
        yield page
        if "LastEvaluatedKey" not in page:
            return
        query = {**query, "ExclusiveStartKey": page["LastEvaluatedKey"]}
