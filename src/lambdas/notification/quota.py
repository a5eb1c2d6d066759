"""Daily caps on alert emails: per rule owner and per recipient address (issue 21, "Bounds").

One email takes one unit from both of today's counters (UTC day), in one DynamoDB transaction:
either both counters are under their cap and both go up, or neither changes and the email is not
sent (TransactWriteItems is all or nothing,
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html). The
counters live in the `state` table (`pk="email-quota"`, the one partition the function's IAM policy
lets it write there; `sk="<YYYY-MM-DD>#owner#<sub>"` or `sk="<YYYY-MM-DD>#address#<sha256 of the
address>"`: the table never holds the address itself) and expire two days later through the table's
TTL (`expires_at`), so nothing accumulates.

Example:
    >>> quota_keys("1b2c", "ann@example.com", dt.datetime(2026, 1, 5, 14, 30, tzinfo=dt.UTC))[0]
    {'pk': 'email-quota', 'sk': '2026-01-05#owner#1b2c'}
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from lib.tables import dynamodb

QUOTA_PK = "email-quota"
# The receipt's status when a cap stopped the email: no HTTP call was made, and the idempotency
# record keeps this outcome, so a retry of the same delivery does not send it either.
CAPPED_STATUS = 0
COUNTER_TTL = dt.timedelta(days=2)


@dataclass(frozen=True)
class EmailCaps:
    per_owner_per_day: int
    per_address_per_day: int

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> EmailCaps:
        caps = cls(int(env["ALERT_EMAILS_PER_OWNER_PER_DAY"]), int(env["ALERT_EMAILS_PER_ADDRESS_PER_DAY"]))
        if caps.per_owner_per_day < 1 or caps.per_address_per_day < 1:
            raise ValueError("ALERT_EMAILS_PER_OWNER_PER_DAY and ALERT_EMAILS_PER_ADDRESS_PER_DAY must be >= 1")
        return caps


def address_digest(address: str) -> str:
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


def quota_keys(owner: str, address: str, now: dt.datetime) -> tuple[dict[str, str], dict[str, str]]:
    """Today's (owner, address) counter keys."""
    day = now.astimezone(dt.UTC).date().isoformat()
    return ({"pk": QUOTA_PK, "sk": f"{day}#owner#{owner}"},
            {"pk": QUOTA_PK, "sk": f"{day}#address#{address_digest(address)}"})


def take_email_quota(table_name: str, caps: EmailCaps, owner: str, address: str, now: dt.datetime) -> bool:
    """Count one email against today's caps; False (nothing counted) when either is reached."""
    expires_at = int((now + COUNTER_TTL).timestamp())

    def counter(key: dict[str, str], cap: int) -> dict[str, Any]:
        return {"Update": {
            "TableName": table_name, "Key": key,
            "UpdateExpression": "SET sent = if_not_exists(sent, :zero) + :one, expires_at = :expires",
            "ConditionExpression": "attribute_not_exists(sent) OR sent < :cap",
            "ExpressionAttributeValues": {":zero": 0, ":one": 1, ":cap": cap, ":expires": expires_at},
        }}

    owner_key, address_key = quota_keys(owner, address, now)
    items: list[Any] = [counter(owner_key, caps.per_owner_per_day), counter(address_key, caps.per_address_per_day)]
    try:
        dynamodb().meta.client.transact_write_items(TransactItems=items)
    except ClientError as error:
        reasons = [str(reason.get("Code")) for reason in error.response.get("CancellationReasons", [])]
        if error.response.get("Error", {}).get("Code") == "TransactionCanceledException" and \
                "ConditionalCheckFailed" in reasons:
            return False
        raise
    return True
