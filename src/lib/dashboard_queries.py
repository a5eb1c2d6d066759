"""The reads behind the dashboard API: tracked tickers, latest sentiment and label counts, pages of
items, time series (table shapes: specs/contracts.md, "Data model").

- latest sentiment: the most recently published `analyzed` item of the ticker (the newest
  `LATEST_SCAN_PAGES * LATEST_PAGE_SIZE` items are looked at: a ticker whose newest 100 items are
  all pending shows none).
- label counts: the ticker's `1h` time-series buckets of the last 24 hours (bucketed by
  publication time, as the analysis fan-out writes them).
- time series: the buckets of one resolution over a window fitted to it (`SERIES_WINDOWS`).
- item pages: newest first through `ticker-index`; the cursor is opaque to clients (base64url of
  DynamoDB's `LastEvaluatedKey`) and checked strictly when it comes back.

Example:
    >>> decode_cursor(encode_cursor({"item_id": "a" * 32, "published_at": "2026-01-05T14:30:01.234Z",
    ...                              "ticker": "AAPL"}), "AAPL")["ticker"]
    'AAPL'
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import itertools
import json
import re
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from boto3.dynamodb.conditions import Attr, Key

from lib.alerts import TICKER_PATTERN
from lib.news.model import ItemStatus, Resolution, iso_ms
from lib.tables import dynamodb, query_pages

TICKER_PK = "ticker"
LATEST_PAGE_SIZE = 25
LATEST_SCAN_PAGES = 4
COUNTS_WINDOW = dt.timedelta(hours=24)
SERIES_WINDOWS = {
    Resolution.ONE_MINUTE: dt.timedelta(hours=2),
    Resolution.FIVE_MINUTES: dt.timedelta(hours=12),
    Resolution.ONE_HOUR: dt.timedelta(days=7),
    Resolution.ONE_DAY: dt.timedelta(days=90),
}
MAX_CURSOR_CHARS = 512
LABELS = ("positive", "neutral", "negative")
_CURSOR_FIELDS = {"item_id": re.compile(r"^[0-9a-f]{32}$"),
                  "published_at": re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"),
                  "ticker": re.compile(TICKER_PATTERN)}


class InvalidCursorError(ValueError):
    """A cursor this API did not hand out (or one for another ticker)."""


def encode_cursor(key: Mapping[str, Any]) -> str:
    raw = json.dumps({name: str(key[name]) for name in sorted(_CURSOR_FIELDS)}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, ticker: str) -> dict[str, str]:
    """The `ExclusiveStartKey` a cursor stands for; InvalidCursorError for anything else."""
    if len(cursor) > MAX_CURSOR_CHARS:
        raise InvalidCursorError(f"cursor longer than {MAX_CURSOR_CHARS} characters")
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError) as error:
        raise InvalidCursorError("cursor is not one this API returned") from error
    if not isinstance(key, dict) or set(key) != set(_CURSOR_FIELDS):
        raise InvalidCursorError("cursor is not one this API returned")
    for name, pattern in _CURSOR_FIELDS.items():
        if not isinstance(key[name], str) or not pattern.match(key[name]):
            raise InvalidCursorError("cursor is not one this API returned")
    if key["ticker"] != ticker:
        raise InvalidCursorError(f"cursor belongs to another ticker than {ticker}")
    return {name: str(value) for name, value in key.items()}


def _number(value: Any) -> float:
    return float(value) if isinstance(value, Decimal | int | float) else 0.0


def _count(row: Mapping[str, Any], name: str) -> int:
    return int(_number(row.get(name, 0)))


def render_item(row: Mapping[str, Any]) -> dict[str, Any]:
    """A news row in the API's shape."""
    analyzed = row.get("status") == ItemStatus.ANALYZED and "sentiment_label" in row
    return {
        "item_id": str(row["item_id"]), "ticker": str(row["ticker"]), "headline": str(row["headline"]),
        "summary": str(row.get("summary", "")), "source": str(row.get("source", "")), "url": str(row.get("url", "")),
        "published_at": str(row["published_at"]), "status": str(row["status"]),
        "sentiment": {"label": str(row["sentiment_label"]), "score": _number(row["sentiment_score"]),
                      "trace_id": str(row["analysis_trace_id"]) if row.get("analysis_trace_id") else None}
        if analyzed else None,
    }


class DashboardReader:
    """Read-only access to the news, timeseries and config tables for the API."""

    def __init__(self, news_table: str, timeseries_table: str, config_table: str):
        resource = dynamodb()
        self._news = resource.Table(news_table)
        self._timeseries = resource.Table(timeseries_table)
        self._config = resource.Table(config_table)

    def tickers(self) -> list[dict[str, str]]:
        """Tracked tickers with their names, by symbol."""
        rows = [row for page in query_pages(self._config, KeyConditionExpression=Key("pk").eq(TICKER_PK))
                for row in page["Items"]]
        return sorted(({"ticker": str(row["sk"]), "name": str(row.get("name", ""))} for row in rows),
                      key=lambda entry: entry["ticker"])

    def is_tracked(self, ticker: str) -> bool:
        response = self._config.get_item(Key={"pk": TICKER_PK, "sk": ticker}, ProjectionExpression="sk")
        return "Item" in response

    def latest(self, ticker: str) -> dict[str, Any] | None:
        kwargs: dict[str, Any] = {
            "IndexName": "ticker-index", "KeyConditionExpression": Key("ticker").eq(ticker),
            "FilterExpression": Attr("status").eq(str(ItemStatus.ANALYZED)), "ScanIndexForward": False,
            "Limit": LATEST_PAGE_SIZE,
        }
        for page in itertools.islice(query_pages(self._news, **kwargs), LATEST_SCAN_PAGES):
            if page["Items"]:
                row = page["Items"][0]
                return {"score": _number(row["sentiment_score"]), "label": str(row["sentiment_label"]),
                        "analyzed_at": str(row["analyzed_at"])}
        return None

    def counts(self, ticker: str, now: dt.datetime) -> dict[str, int]:
        since = Resolution.ONE_HOUR.bucket_start(now - COUNTS_WINDOW) + Resolution.ONE_HOUR.width
        totals = dict.fromkeys(LABELS, 0)
        for row in self._buckets(ticker, Resolution.ONE_HOUR, since):
            for label in LABELS:
                totals[label] += _count(row, label)
        return totals

    def items(self, ticker: str, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
        kwargs: dict[str, Any] = {
            "IndexName": "ticker-index", "KeyConditionExpression": Key("ticker").eq(ticker),
            "ScanIndexForward": False, "Limit": limit,
        }
        if cursor is not None:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor, ticker)
        response = self._news.query(**kwargs)
        last = response.get("LastEvaluatedKey")
        return [render_item(row) for row in response["Items"]], encode_cursor(last) if last else None

    def series(self, ticker: str, resolution: Resolution, now: dt.datetime) -> list[dict[str, Any]]:
        since = resolution.bucket_start(now - SERIES_WINDOWS[resolution])
        buckets = []
        for row in self._buckets(ticker, resolution, since):
            count = _count(row, "count")
            buckets.append({
                "bucket_start": str(row["bucket_start"]), "count": count,
                "avg_score": round(_number(row.get("score_sum", 0)) / count, 4) if count else 0.0,
                **{label: _count(row, label) for label in LABELS},
            })
        return buckets

    def _buckets(self, ticker: str, resolution: Resolution, since: dt.datetime) -> list[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key("series_key").eq(f"{ticker}#{resolution}")
            & Key("bucket_start").gte(iso_ms(since)),
        }
        return [row for page in query_pages(self._timeseries, **kwargs) for row in page["Items"]]
