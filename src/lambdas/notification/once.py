"""At most one alert email per (rule, scored item): Powertools' Idempotency utility around the send.

The idempotency key is the rule, the item and its score version (`analyzed_at`, stamped once by the
analysis run that scored it), never the whole event: a retry of the same delivery (Lambda retries
a failed asynchronous invocation with the same event, and SNS may deliver a message twice) finds
the rule's record and sends nothing, while a new score of the item, or another rule, is a new key.
Each rule has its own record, so a retry after "rule A sent, rule B failed" sends B only.

Powertools (aws_lambda_powertools/utilities/idempotency/base.py, persistence/dynamodb.py):
- before the send: a conditional `PutItem` writes the record INPROGRESS, with
  `in_progress_expiration` = now + the invocation's remaining time (`register_lambda_context`);
  a record already there is read back (`ReturnValuesOnConditionCheckFailure`, else `GetItem`):
  COMPLETED returns the stored receipt without sending, INPROGRESS raises
  IdempotencyAlreadyInProgressError until that expiry has passed;
- after the send: `UpdateItem` to COMPLETED with the receipt, kept for `RECORD_TTL`;
- a send that raised: `DeleteItem`, so the retry sends.
These are the table's four IAM actions (stack.json). The Tracer patches botocore, so each call is a
`dynamodb` subsegment under the rule's `deliver` subsegment, like every other AWS call.

The window that remains (README, "Alert emails"): a crash after SendGrid accepted the email and
before `UpdateItem` leaves the record INPROGRESS; a retry after its in-progress expiry sends again.
Docs: https://docs.powertools.aws.dev/lambda/python/latest/utilities/idempotency/

Example (not run: needs a Lambda context and the idempotency table):
    >>> IDEMPOTENCY.register_lambda_context(context)                                       # doctest: +SKIP
    >>> send_once(idempotency_store(table), delivery=AlertDelivery(...), send=lambda: (202, 1))  # doctest: +SKIP
    SendReceipt(status=202, attempts=1, replayed=False)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.persistence.datarecord import DataRecord
from aws_lambda_powertools.utilities.idempotency.serialization.dataclass import DataclassSerializer

# Lambda keeps retrying an asynchronous event for up to 6 hours (maximum event age), so a record
# must outlive that; a day also covers a late SNS redelivery. DynamoDB TTL removes it afterwards.
# https://docs.aws.amazon.com/lambda/latest/dg/invocation-async-error-handling.html
RECORD_TTL_S = 24 * 60 * 60
# stack.json `idempotency`: hash `id`, range `sort_key`, TTL `expiration`. Powertools' composite-key
# layout: the partition is a static value, the sort key `<function name>.<module>.<function>#<hash>`.
# The partition is fixed here rather than read from AWS_LAMBDA_FUNCTION_NAME when the layer is built.
SORT_KEY_ATTRIBUTE = "sort_key"
STATIC_PARTITION = "idempotency#alert_email"


@dataclass(frozen=True)
class AlertDelivery:
    """The idempotency key of one alert email."""

    alert_id: str
    item_id: str
    analyzed_at: str  # the score's version: a re-score of the item is a new alert


@dataclass(frozen=True)
class SendReceipt:
    """What the send returned; `replayed` when this call found it already sent and sent nothing."""

    status: int
    attempts: int
    replayed: bool = False


def _replayed(response: Any, idempotent_data: DataRecord) -> SendReceipt:
    """Powertools' response hook: runs only when a COMPLETED record answered instead of a send."""
    if not isinstance(response, SendReceipt):
        raise TypeError(f"idempotency record holds {type(response).__name__}, not a SendReceipt")
    return dataclasses.replace(response, replayed=True)


# One config per environment: `register_lambda_context` is called per invocation by the handler.
IDEMPOTENCY = IdempotencyConfig(expires_after_seconds=RECORD_TTL_S, raise_on_no_idempotency_key=True,
                                response_hook=_replayed)


@cache
def idempotency_store(table_name: str) -> DynamoDBPersistenceLayer:
    """One persistence layer (and client) per environment and table. A low-level client: the
    layer writes typed attribute values (`{"S": ...}`), which a boto3 resource's client would
    serialise a second time."""
    return DynamoDBPersistenceLayer(table_name=table_name, sort_key_attr=SORT_KEY_ATTRIBUTE,
                                    static_pk_value=STATIC_PARTITION, boto3_client=boto3.client("dynamodb"))


def _send(delivery: AlertDelivery, send: Callable[[], tuple[int, int]]) -> SendReceipt:
    status, attempts = send()
    return SendReceipt(status, attempts)


def send_once(store: DynamoDBPersistenceLayer, *, delivery: AlertDelivery,
              send: Callable[[], tuple[int, int]]) -> SendReceipt:
    """`send()` (→ status, attempts) unless `delivery` was already sent: then its stored receipt, replayed."""
    once = idempotent_function(_send, data_keyword_argument="delivery", persistence_store=store, config=IDEMPOTENCY,
                               output_serializer=DataclassSerializer(SendReceipt))
    receipt: SendReceipt = once(delivery=delivery, send=send)
    return receipt
