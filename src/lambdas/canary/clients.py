"""The canary's AWS clients: one each per execution environment, with botocore's own retries off.

`errors.call_aws` owns the retry policy (FR-079: at most three retries, never for permission
errors); botocore retrying underneath would multiply the calls and hide a revoked role behind
seconds of backoff. Timeouts are short: the canary must report within its own timeout.

Example (not run: needs a Lambda context and the function's AWS resources):
    >>> xray().put_trace_segments(TraceSegmentDocuments=[...])   # doctest: +SKIP
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_xray import XRayClient

CLIENT_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=10)
# A probe invocation may meet a cold start (the SSE image's init): room for it, still well inside the run.
LAMBDA_CONFIG = CLIENT_CONFIG.merge(Config(read_timeout=30))


@cache
def xray() -> XRayClient:
    return boto3.client("xray", config=CLIENT_CONFIG)


@cache
def cloudwatch() -> CloudWatchClient:
    return boto3.client("cloudwatch", config=CLIENT_CONFIG)


@cache
def sns() -> SNSClient:
    return boto3.client("sns", config=CLIENT_CONFIG)


@cache
def dynamodb() -> DynamoDBClient:
    return boto3.client("dynamodb", config=CLIENT_CONFIG)


@cache
def lambda_() -> Any:  # no mypy_boto3_lambda stubs installed
    return boto3.client("lambda", config=LAMBDA_CONFIG)


@cache
def secretsmanager() -> SecretsManagerClient:
    return boto3.client("secretsmanager", config=CLIENT_CONFIG)
