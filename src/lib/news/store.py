"""DynamoDB access for the news pipeline: items, time series, breakers, audit records, tickers.

Table shapes are specs/contracts.md's "Data model". Every method is one or a few DynamoDB calls
and raises what DynamoDB raised; the Lambdas decide which failures are silent failure paths.
Clients are created on first use (boto3 reads `AWS_ENDPOINT_URL` then) and reused when warm.

Example:
    >>> import os
    >>> from lib.news.model import Article
    >>> news = NewsTable(os.environ["NEWS_TABLE"])
    >>> now = dt.datetime.now(dt.UTC)
    >>> article = Article("tiingo", "AAPL", f"Example headline {now.isoformat()}", "", "https://example.com/a", now)
    >>> news.put_new(NewsItem.from_article(article, now))
    True
    >>> news.put_new(NewsItem.from_article(article, now))   # the same story again: not new
    False
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from boto3.dynamodb.conditions import Attr, Key
from botocore.exceptions import BotoCoreError, ClientError

from lib.news.breaker import BreakerState, BreakerStatus
from lib.news.model import FEED_MARKER_KEY, ItemStatus, NewsItem, Resolution, as_decimal, iso_ms, parse_iso
from lib.tables import dynamodb, is_condition_failure, query_pages

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_sns import SNSClient

    from lib.news.sentiment import Sentiment  # a type only: importing it loads VADER

BREAKER_PK = "breaker"
AUDIT_PK = "audit#ingestion"
TICKER_PK = "ticker"
AUDIT_TTL = dt.timedelta(days=90)
# What a failed AWS call raises: the service's answer (ClientError) or none at all (BotoCoreError:
# connection, timeout, credentials). The errors a silent failure path around these calls handles.
AWS_ERRORS: tuple[type[Exception], ...] = (ClientError, BotoCoreError)


def dynamodb_client() -> DynamoDBClient:
    """The low-level client behind `dynamodb()`: the one every call of this module goes through."""
    return dynamodb().meta.client


@cache
def sns_client() -> SNSClient:
    return boto3.client("sns")


class NewsTable:
    """The `news` table (hash `item_id`, range `published_at`)."""

    def __init__(self, name: str):
        self.name = name
        self._table = dynamodb().Table(name)

    def exists(self, item_id: str) -> bool:
        """Is any item stored under this dedup key (whatever its `published_at`)?"""
        response = self._table.query(
            KeyConditionExpression=Key("item_id").eq(item_id), ProjectionExpression="item_id", Limit=1,
            ConsistentRead=True,
        )
        return bool(response["Items"])

    def item_ids_of_ticker(self, ticker: str, first_day: dt.date, last_day: dt.date) -> set[str]:
        """`item_id`s stored for `ticker` and published on the UTC days `first_day`..`last_day`: one
        `ticker-index` Query (more pages only past 1 MB). The index is eventually consistent: an item
        written a moment ago may be missing from the answer (items leave only by TTL, after 30 days)."""
        kwargs: dict[str, Any] = {
            "IndexName": "ticker-index",
            "KeyConditionExpression": Key("ticker").eq(ticker) & Key("published_at").between(
                f"{first_day.isoformat()}T00:00:00.000Z", f"{last_day.isoformat()}T23:59:59.999Z"),
            "ProjectionExpression": "item_id",
        }
        return {str(row["item_id"]) for page in query_pages(self._table, **kwargs) for row in page["Items"]}

    def put_new(self, item: NewsItem) -> bool:
        """Store a new `pending` item; False when the key is already taken (the dedup write)."""
        try:
            self._table.put_item(Item=item.to_item(), ConditionExpression=Attr("item_id").not_exists())
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def get(self, item_id: str, published_at: str) -> dict[str, Any] | None:
        response = self._table.get_item(Key={"item_id": item_id, "published_at": published_at},
                                        ConsistentRead=True)
        item: dict[str, Any] | None = response.get("Item")
        return item

    def mark_analyzed(self, item_id: str, published_at: str, sentiment: Sentiment, now: dt.datetime,
                      trace_id: str | None = None) -> bool:
        """`pending` → `analyzed` with the score; False when the item was no longer pending (a redelivery).

        `trace_id`: the X-Ray trace the score was computed in (the correlation id, FR-010), kept as
        `analysis_trace_id` so the dashboard can link each scored item to its trace.
        """
        stamp = iso_ms(now)
        trace_set = ", analysis_trace_id = :trace" if trace_id else ""
        trace_value = {":trace": trace_id} if trace_id else {}
        try:
            self._table.update_item(
                Key={"item_id": item_id, "published_at": published_at},
                UpdateExpression="SET #status = :analyzed, status_changed_at = :now, analyzed_at = :now, "
                                 "sentiment_label = :label, sentiment_score = :score" + trace_set,
                ConditionExpression="#status = :pending",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={
                    ":analyzed": str(ItemStatus.ANALYZED), ":pending": str(ItemStatus.PENDING), ":now": stamp,
                    ":label": sentiment.label, ":score": as_decimal(sentiment.score), **trace_value,
                },
            )
        except ClientError as error:
            if is_condition_failure(error):
                return False
            raise
        return True

    def announce_analysed(self, changed_at: str) -> None:
        """Bump the change marker after a score (the SSE streams query when it moves). One UpdateItem
        of a few bytes: 1 WCU. `changed_at` may go back under concurrent writers; the version, an
        atomic ADD, never does, and it is what readers compare."""
        self._table.update_item(
            Key=dict(FEED_MARKER_KEY), UpdateExpression="SET changed_at = :at ADD feed_version :one",
            ExpressionAttributeValues={":at": changed_at, ":one": 1},
        )

    def pending_since_before(self, cutoff: dt.datetime, limit: int) -> list[dict[str, str]]:
        """Keys of items `pending` since before `cutoff` (oldest first, at most `limit`): status-index."""
        keys: list[dict[str, str]] = []
        kwargs: dict[str, Any] = {
            "IndexName": "status-index",
            "KeyConditionExpression": Key("status").eq(str(ItemStatus.PENDING))
            & Key("status_changed_at").lt(iso_ms(cutoff)),
            "ProjectionExpression": "item_id, published_at",
        }
        while len(keys) < limit:
            response = self._table.query(**kwargs, Limit=limit - len(keys))
            keys.extend({"item_id": str(i["item_id"]), "published_at": str(i["published_at"])}
                        for i in response["Items"])
            if "LastEvaluatedKey" not in response:
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return keys


class TimeseriesTable:
    """The `timeseries` table: one row per `<TICKER>#<resolution>` and bucket, counters added atomically."""

    def __init__(self, name: str):
        self.name = name

    def fanout_updates(self, ticker: str, published_at: str, sentiment: Sentiment) -> list[dict[str, Any]]:
        """One `Update` per resolution: ADD count, score_sum and the label's counter to the item's bucket."""
        published = parse_iso(published_at)
        updates = []
        for resolution in Resolution:
            start = resolution.bucket_start(published)
            updates.append({"Update": {
                "TableName": self.name,
                "Key": {"series_key": f"{ticker}#{resolution}", "bucket_start": iso_ms(start)},
                "UpdateExpression": "ADD #count :one, score_sum :score, #label :one SET expires_at = :expires",
                "ExpressionAttributeNames": {"#count": "count", "#label": sentiment.label},
                "ExpressionAttributeValues": {
                    ":one": 1, ":score": as_decimal(sentiment.score),
                    ":expires": int((start + resolution.retention).timestamp()),
                },
            }})
        return updates

    def write_fanout(self, updates: list[dict[str, Any]], idempotency_token: str) -> None:
        """All the item's buckets in one transaction: never a partial fan-out, and a retry carrying the
        same token within 10 minutes is not applied twice (DynamoDB's ClientRequestToken)."""
        dynamodb_client().transact_write_items(
            TransactItems=updates,  # type: ignore[arg-type]  # plain values: the resource's client serialises
            ClientRequestToken=idempotency_token,
        )


class StateTable:
    """The `state` table: circuit breakers (`pk="breaker"`) and ingestion audit records."""

    def __init__(self, name: str):
        self.name = name
        self._table = dynamodb().Table(name)

    def load_breakers(self) -> dict[str, BreakerState]:
        response = self._table.query(KeyConditionExpression=Key("pk").eq(BREAKER_PK), ConsistentRead=True)
        states = {}
        for row in response["Items"]:
            opened = row.get("opened_at")
            states[str(row["sk"])] = BreakerState(
                source=str(row["sk"]), state=BreakerStatus(str(row["state"])), failures=int(str(row["failures"])),
                opened_at=parse_iso(str(opened)) if opened else None,
            )
        return states

    def save_breaker(self, state: BreakerState, now: dt.datetime) -> None:
        self._table.put_item(Item={
            "pk": BREAKER_PK, "sk": state.source, "state": str(state.state), "failures": state.failures,
            "opened_at": iso_ms(state.opened_at) if state.opened_at else None, "updated_at": iso_ms(now),
        })

    def write_audit(self, started_at: dt.datetime, request_id: str, record: Mapping[str, Any]) -> None:
        self._table.put_item(Item={
            **_dynamo_values(record),
            "pk": AUDIT_PK, "sk": f"{iso_ms(started_at)}#{request_id}",
            "expires_at": int((started_at + AUDIT_TTL).timestamp()),
        })


def _dynamo_values(record: Mapping[str, Any]) -> dict[str, Any]:
    """Floats become Decimals (DynamoDB refuses floats); nested maps and lists are converted too."""
    def convert(value: Any) -> Any:
        if isinstance(value, float):
            return as_decimal(value, 3)
        if isinstance(value, Mapping):
            return {str(k): convert(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [convert(v) for v in value]
        return value

    return {str(key): convert(value) for key, value in record.items()}


class ConfigTable:
    """The `config` table: tracked tickers (`pk="ticker"`, `sk=<TICKER>`, `name`)."""

    def __init__(self, name: str):
        self._table = dynamodb().Table(name)

    def tracked_tickers(self) -> list[str]:
        pages = query_pages(self._table, KeyConditionExpression=Key("pk").eq(TICKER_PK), ProjectionExpression="sk")
        return [str(row["sk"]) for page in pages for row in page["Items"]]

    def track(self, tickers: Iterable[tuple[str, str]]) -> None:
        """Seed tracked tickers (the devstack and tests do; ingestion only reads them)."""
        with self._table.batch_writer() as batch:
            for ticker, name in tickers:
                batch.put_item(Item={"pk": TICKER_PK, "sk": ticker.upper(), "name": name})
