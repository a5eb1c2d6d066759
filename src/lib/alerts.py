"""Alert rules: the `config` table's `pk="alert"` rows, shared by dashboard, notification and SSE.

A rule says "email me when a new score for TICKER is above / below THRESHOLD". It belongs to one
user (`owner`: the Cognito `sub` of whoever created it) and mails that user's verified address.
Creating one also makes a `stream_token` for the rule's own SSE stream: the caller shows it once;
the table keeps only its SHA-256 (`stream_token_sha256`), so a leaked table does not leak stream
access.

Keys: a rule stays at `pk="alert"`, `sk=<alert_id>` (the notification function reads a ticker's
rules from that partition, the SSE function one rule by id); the `owner-index` GSI (hash `owner`,
range `created_at`) keys them by owner for listing. Ownership is enforced on the base table, with
condition expressions (strongly consistent): a delete of another user's rule fails its condition
and is reported as "no such rule". Each owner's count (`pk="alert-owner"`, `sk=<owner>`,
`rule_count`) changes in the same transaction as the rule, so the cap holds under a burst
(TransactWriteItems: all or nothing,
https://docs.aws.amazon.com/amazondynamodb/latest/APIReference/API_TransactWriteItems.html).

Example:
    >>> rule = AlertRule("0" * 32, "AAPL", Direction.ABOVE, 0.5, "me@example.com", "2026-01-05T14:30:01.234Z",
    ...                  owner="1b2c")
    >>> rule.matches(0.62), rule.matches(0.5)
    (True, False)
    >>> token_sha256("abc") == hashlib.sha256(b"abc").hexdigest()
    True
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import ClientError

from lib.news.model import as_decimal, iso_ms
from lib.tables import dynamodb, query_pages

ALERT_PK = "alert"
OWNER_COUNT_PK = "alert-owner"
OWNER_INDEX = "owner-index"
# Per-user cap (issue 21): bounds table growth and the notification fan-out one account can cause.
MAX_RULES_PER_OWNER = 10
# Cognito's `sub` is a UUID; kept loose (any printable id without spaces), bounded.
OWNER_PATTERN = r"^[\w\-:.@]{1,128}$"
# The symbols the API and the rules accept: upper-case, as the config table stores them.
TICKER_PATTERN = r"^[A-Z][A-Z0-9.\-]{0,9}$"
ALERT_ID_PATTERN = r"^[0-9a-f]{32}$"
# Deliberately plain: one @, no spaces, a dot in the domain. SendGrid does the real checking.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
MAX_EMAIL_CHARS = 254
STREAM_TOKEN_BYTES = 32


class Direction(StrEnum):
    ABOVE = "above"
    BELOW = "below"


class InvalidAlertRuleError(ValueError):
    """A stored rule that does not have the shape the dashboard writes."""


class RuleLimitError(RuntimeError):
    """The owner already has MAX_RULES_PER_OWNER rules: nothing was written."""


@dataclass(frozen=True)
class AlertRule:
    alert_id: str
    ticker: str
    direction: Direction
    threshold: float
    email: str
    created_at: str
    owner: str

    def matches(self, score: float) -> bool:
        """Strictly beyond the threshold: a score equal to it does not fire."""
        if self.direction is Direction.ABOVE:
            return score > self.threshold
        return score < self.threshold

    def public(self) -> dict[str, Any]:
        """The API shape (specs/contracts.md): never the token hash."""
        return {"alert_id": self.alert_id, "ticker": self.ticker, "direction": str(self.direction),
                "threshold": self.threshold, "email": self.email}

    @classmethod
    def from_item(cls, row: Mapping[str, Any]) -> AlertRule:
        try:
            return cls(
                alert_id=str(row["sk"]), ticker=str(row["ticker"]), direction=Direction(str(row["direction"])),
                threshold=float(row["threshold"]), email=str(row["email"]), created_at=str(row["created_at"]),
                owner=str(row["owner"]),
            )
        except (KeyError, ValueError, TypeError) as error:
            raise InvalidAlertRuleError(f"alert rule {str(row.get('sk'))[:40]!r} is malformed: {error!r}") from error


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AlertTable:
    """Alert rules in the `config` table (hash `pk` = "alert", range `sk` = alert id; `owner-index` by owner)."""

    def __init__(self, name: str, max_rules_per_owner: int = MAX_RULES_PER_OWNER):
        self.name = name
        self.max_rules_per_owner = max_rules_per_owner
        self._table = dynamodb().Table(name)

    def create(self, owner: str, ticker: str, direction: Direction, threshold: float, email: str,
               now: dt.datetime) -> tuple[AlertRule, str]:
        """Store a new rule of `owner`; returns it and its stream token (the only time the token exists in
        clear). RuleLimitError (nothing written) when the owner has `max_rules_per_owner` rules already."""
        rule = AlertRule(uuid.uuid4().hex, ticker, direction, threshold, email, iso_ms(now), owner)
        token = secrets.token_urlsafe(STREAM_TOKEN_BYTES)
        count_update: dict[str, Any] = {
            "TableName": self.name, "Key": {"pk": OWNER_COUNT_PK, "sk": owner},
            "UpdateExpression": "SET rule_count = if_not_exists(rule_count, :zero) + :one",
            "ConditionExpression": "attribute_not_exists(rule_count) OR rule_count < :cap",
            "ExpressionAttributeValues": {":zero": 0, ":one": 1, ":cap": self.max_rules_per_owner},
        }
        put: dict[str, Any] = {
            "TableName": self.name,
            "Item": {"pk": ALERT_PK, "sk": rule.alert_id, "owner": owner, "ticker": ticker,
                     "direction": str(direction), "threshold": as_decimal(threshold), "email": email,
                     "created_at": rule.created_at, "stream_token_sha256": token_sha256(token)},
            "ConditionExpression": "attribute_not_exists(sk)",
        }
        try:
            self._table.meta.client.transact_write_items(
                TransactItems=_transaction({"Update": count_update}, {"Put": put}))
        except ClientError as error:
            if _failed_conditions(error)[:1] == ["ConditionalCheckFailed"]:
                raise RuleLimitError(f"at most {self.max_rules_per_owner} alert rules per user") from error
            raise
        return rule, token

    def all(self, ticker: str | None = None) -> list[AlertRule]:
        """Every rule of every owner (of `ticker` only, when given), oldest first: the notification's read."""
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(ALERT_PK), "ConsistentRead": True}
        if ticker is not None:
            kwargs["FilterExpression"] = Attr("ticker").eq(ticker)
        rules = [AlertRule.from_item(row) for page in query_pages(self._table, **kwargs) for row in page["Items"]]
        return sorted(rules, key=lambda rule: (rule.created_at, rule.alert_id))

    def owned_by(self, owner: str) -> list[AlertRule]:
        """`owner`'s rules, oldest first. A GSI read is eventually consistent
        (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html#GSI.Reading): a rule
        created a moment ago may be missing; ownership checks never rely on it."""
        query = {"IndexName": OWNER_INDEX, "KeyConditionExpression": Key("owner").eq(owner)}
        rules = [AlertRule.from_item(row) for page in query_pages(self._table, **query) for row in page["Items"]]
        return sorted(rules, key=lambda rule: (rule.created_at, rule.alert_id))

    def delete(self, owner: str, alert_id: str) -> bool:
        """False when `owner` has no such rule (absent, or another user's: the caller cannot tell which)."""
        delete: dict[str, Any] = {"TableName": self.name, "Key": {"pk": ALERT_PK, "sk": alert_id},
                  "ConditionExpression": "#owner = :owner", "ExpressionAttributeNames": {"#owner": "owner"},
                  "ExpressionAttributeValues": {":owner": owner}}
        count_update: dict[str, Any] = {"TableName": self.name, "Key": {"pk": OWNER_COUNT_PK, "sk": owner},
                        "UpdateExpression": "ADD rule_count :minus_one",
                        "ExpressionAttributeValues": {":minus_one": -1}}
        try:
            self._table.meta.client.transact_write_items(
                TransactItems=_transaction({"Delete": delete}, {"Update": count_update}))
        except ClientError as error:
            if _failed_conditions(error)[:1] == ["ConditionalCheckFailed"]:
                return False
            raise
        return True

    def stream_token_matches(self, alert_id: str, token: str) -> bool | None:
        """Does `token` open the rule's stream? None when the rule does not exist (404, not 401)."""
        response = self._table.get_item(Key={"pk": ALERT_PK, "sk": alert_id}, ConsistentRead=True,
                                        ProjectionExpression="stream_token_sha256")
        row = response.get("Item")
        if row is None:
            return None
        return hmac.compare_digest(str(row.get("stream_token_sha256", "")), token_sha256(token))


def _failed_conditions(error: ClientError) -> list[str]:
    """The per-item cancellation codes of a cancelled transaction (`None` for items that passed); [] otherwise."""
    if error.response.get("Error", {}).get("Code") != "TransactionCanceledException":
        return []
    return [str(reason.get("Code")) for reason in error.response.get("CancellationReasons", [])]


def _transaction(*items: dict[str, Any]) -> list[Any]:
    """TransactItems of the resource's client (Python values, which its high-level layer serialises)."""
    return list(items)
