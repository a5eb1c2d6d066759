"""Alert rules: the `config` table's `pk="alert"` rows, shared by dashboard, notification and SSE.

A rule says "email me when a new score for TICKER is above / below THRESHOLD". Creating one also
makes a `stream_token` for the rule's own SSE stream: the caller shows it once; the table keeps
only its SHA-256 (`stream_token_sha256`), so a leaked table does not leak stream access.

Example:
    >>> rule = AlertRule("0" * 32, "AAPL", Direction.ABOVE, 0.5, "me@example.com", "2026-01-05T14:30:01.234Z")
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
from lib.tables import dynamodb, is_condition_failure, query_pages

ALERT_PK = "alert"
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


@dataclass(frozen=True)
class AlertRule:
    alert_id: str
    ticker: str
    direction: Direction
    threshold: float
    email: str
    created_at: str

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
            )
        except (KeyError, ValueError, TypeError) as error:
            raise InvalidAlertRuleError(f"alert rule {str(row.get('sk'))[:40]!r} is malformed: {error!r}") from error


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class AlertTable:
    """Alert rules in the `config` table (hash `pk` = "alert", range `sk` = alert id)."""

    def __init__(self, name: str):
        self.name = name
        self._table = dynamodb().Table(name)

    def create(self, ticker: str, direction: Direction, threshold: float, email: str,
               now: dt.datetime) -> tuple[AlertRule, str]:
        """Store a new rule; returns it and its stream token (the only time the token exists in clear)."""
        rule = AlertRule(uuid.uuid4().hex, ticker, direction, threshold, email, iso_ms(now))
        token = secrets.token_urlsafe(STREAM_TOKEN_BYTES)
        self._table.put_item(
            Item={"pk": ALERT_PK, "sk": rule.alert_id, "ticker": ticker, "direction": str(direction),
                  "threshold": as_decimal(threshold), "email": email, "created_at": rule.created_at,
                  "stream_token_sha256": token_sha256(token)},
            ConditionExpression=Attr("sk").not_exists(),
        )
        return rule, token

    def all(self, ticker: str | None = None) -> list[AlertRule]:
        """Every rule (of `ticker` only, when given), oldest first."""
        kwargs: dict[str, Any] = {"KeyConditionExpression": Key("pk").eq(ALERT_PK), "ConsistentRead": True}
        if ticker is not None:
            kwargs["FilterExpression"] = Attr("ticker").eq(ticker)
        rules = [AlertRule.from_item(row) for page in query_pages(self._table, **kwargs) for row in page["Items"]]
        return sorted(rules, key=lambda rule: (rule.created_at, rule.alert_id))

    def delete(self, alert_id: str) -> bool:
        """False when there was no such rule."""
        try:
            self._table.delete_item(Key={"pk": ALERT_PK, "sk": alert_id}, ConditionExpression=Attr("sk").exists())
        except ClientError as error:
            if is_condition_failure(error):
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
