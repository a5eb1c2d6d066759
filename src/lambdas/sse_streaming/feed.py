"""Newly analysed items, read from the news table's `status-index`, kept by the execution environment.

Every stream asks "what is after my cursor?" each poll cycle. The answer is kept in a bounded window
of recent items (the cache of FR-007) that is complete between `floor` and `horizon`. An
environment serves one stream at a time (classic Lambda), and keeps the window across its warm
invocations, so a stream that resumes where the previous one ended reads it from the window:

- `cold_start`: the window is empty; query from the asking stream's cursor.
- `ttl_expired`: the window is older than its TTL; query from its horizon onwards (one query,
  whoever asks first; the others then hit).
- `behind_window`: the cursor is below the window's floor (a resume from long ago, or items
  evicted); query for that stream alone, without touching the window.
- `settle_due`: an item the last query saw settling has settled; query from the horizon onwards.
- `marker_moved`: the change marker (below) announced items the window has not read; query from
  the horizon onwards.
- `fresh`: a hit.

The change marker (issue 19). Every stream is its own execution environment, so every stream pays
its own DynamoDB reads; a Query of the index each poll costs at least 0.5 RCU even when it finds
nothing. The analysis function bumps one tiny item of the news table (`FEED_MARKER_KEY`:
`feed_version`, `changed_at`) after each score; a stream reads that item (`read_marker`, one
eventually consistent GetItem) every `SSE_MARKER_INTERVAL_S` and queries only when its version
moved, at the moment the announced item has settled, plus once every `SSE_POLL_INTERVAL_S` as a
safety net (a marker write lost to a crash is caught then). The window remembers the marker version
it has read up to, so a stream that resumes in a warm environment sees a move that happened in the
gap between streams. Read-unit rules: benchmarks/RESULTS.md, section 5.

Reads deliver only up to `index_settle_s` short of now (see settings), so an item the index shows
late is not skipped. They look up to now, though: the earliest item still settling
(`next_settle_ts`) lets a stream poll again the moment it settles (`settle_due`) instead of a
whole poll interval later. Items are ordered by `(status_changed_at, item_id)`; a query cut by
its limit never cuts through one timestamp (items of one millisecond come back in hash order).

Example:
    >>> cursor = Position("2026-11-25T08:00:00.000Z", "")
    >>> read = FEED.read("news", cursor, "2026-11-25T08:00:01.500Z", 1.0)             # doctest: +SKIP
    >>> read.cache_hit, read.trigger, [item.item_id for item in read.items]       # doctest: +SKIP
    (False, 'cold_start', ['9f...'])
"""

from __future__ import annotations

import bisect
import datetime as dt
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from lambdas.sse_streaming.events import AFTER_ALL, Position
from lib.news.model import FEED_MARKER_KEY, ItemStatus, iso_ms, parse_iso
from lib.tracing.otel import aws_call_span, set_annotations

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient

CACHE_MAX_ENTRIES = 1000
QUERY_PAGE_SIZE = 200
STATUS_INDEX = "status-index"
MILLISECOND = dt.timedelta(milliseconds=1)  # the data model's timestamp resolution
# What a `sentiment_update` needs of a row: the query returns only these (all strings but the score).
FEED_FIELDS = ("item_id", "status_changed_at", "ticker", "headline", "sentiment_label", "sentiment_score",
               "published_at", "analyzed_at", "analysis_trace_id")


@cache
def dynamodb_client() -> DynamoDBClient:
    """botocore's DynamoDB client, created at the first read: this function needs no boto3 (its import,
    ~0.2 s with s3transfer, was most of the cold start; benchmarks/RESULTS.md, section 2). It shares
    the environment's one botocore session with the CloudWatch client (lib.aws_session)."""
    from lib.aws_session import botocore_session  # botocore's import deferred: the first frame goes out first

    return cast("DynamoDBClient", botocore_session().create_client("dynamodb"))


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A low-level row of `FEED_FIELDS` as plain values: strings, numbers as Decimal."""
    values: dict[str, Any] = {}
    for name, typed in row.items():
        if "S" in typed:
            values[name] = typed["S"]
        elif "N" in typed:
            values[name] = Decimal(typed["N"])
        else:
            raise MalformedItemError(f"analysed item attribute {name!r} is not a string or number: {list(typed)}")
    return values


@dataclass(frozen=True)
class Marker:
    """The change marker as read: `version` counts the scores announced; `changed_at` is the latest
    `status_changed_at` written with it (None before the first score)."""

    version: int
    changed_at: str | None


def read_marker(table_name: str) -> Marker:
    """One eventually consistent GetItem of the marker: 0.5 RCU, the price of any read up to 4 KB
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html).
    A stale answer only delays a query: versions only grow, and a lower one is ignored.

    Example:
        >>> read_marker("news")                                              # doctest: +SKIP
        Marker(version=41, changed_at='2026-11-25T08:00:01.234Z')
    """
    with aws_call_span("DynamoDB", "GetItem", [table_name]):
        response = dynamodb_client().get_item(
            TableName=table_name, Key={name: {"S": value} for name, value in FEED_MARKER_KEY.items()},
            ProjectionExpression="feed_version, changed_at")
    row = response.get("Item", {})
    return Marker(int(row["feed_version"]["N"]) if "feed_version" in row else 0,
                  row["changed_at"]["S"] if "changed_at" in row else None)


class MalformedItemError(ValueError):
    """An `analyzed` row of the news table lacks what a `sentiment_update` carries."""


@dataclass(frozen=True)
class FeedItem:
    position: Position
    ticker: str
    headline: str
    label: str
    score: float
    published_at: str
    analyzed_at: str
    trace_id: str | None = None  # the X-Ray trace the score was computed in (`analysis_trace_id`)

    @property
    def item_id(self) -> str:
        return self.position.item

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> FeedItem:
        try:
            score = row["sentiment_score"]
            return cls(
                position=Position(str(row["status_changed_at"]), str(row["item_id"])),
                ticker=str(row["ticker"]), headline=str(row["headline"]), label=str(row["sentiment_label"]),
                score=float(score) if isinstance(score, Decimal | int | float) else float(str(score)),
                published_at=str(row["published_at"]), analyzed_at=str(row["analyzed_at"]),
                trace_id=str(row["analysis_trace_id"]) if row.get("analysis_trace_id") else None,
            )
        except (KeyError, ValueError) as error:
            raise MalformedItemError(
                f"analysed item {str(row.get('item_id'))[:40]!r} lacks a field: {error}") from error

    def event_data(self) -> dict[str, Any]:
        """The `sentiment_update` data of specs/contracts.md, in its order."""
        return {"item_id": self.item_id, "ticker": self.ticker, "headline": self.headline, "label": self.label,
                "score": self.score, "published_at": self.published_at, "analyzed_at": self.analyzed_at,
                "trace_id": self.trace_id}


@dataclass(frozen=True)
class QueryResult:
    items: list[FeedItem]  # after the query's start, ordered
    horizon: Position      # everything up to here was read
    duration_ms: float
    next_settle_ts: str | None = None  # the earliest item seen past the horizon, still settling


def _query_pages(table_name: str, lower: str, upper: str | None, limit: int | None
                 ) -> tuple[list[dict[str, Any]], bool]:
    """Analysed rows with `lower <= status_changed_at <= upper` (`= lower` without `upper`), oldest
    first; (rows, more_left)."""
    between = "BETWEEN :lower AND :upper" if upper is not None else "= :lower"
    values = {":status": {"S": str(ItemStatus.ANALYZED)}, ":lower": {"S": lower}}
    if upper is not None:
        values[":upper"] = {"S": upper}
    names = {f"#f{index}": name for index, name in enumerate(FEED_FIELDS)}
    kwargs: dict[str, Any] = {
        "TableName": table_name, "IndexName": STATUS_INDEX, "ScanIndexForward": True,
        "KeyConditionExpression": f"#status = :status AND #f1 {between}",
        "ProjectionExpression": ", ".join(names), "ExpressionAttributeNames": {"#status": "status", **names},
        "ExpressionAttributeValues": values,
    }
    rows: list[dict[str, Any]] = []
    with aws_call_span("DynamoDB", "Query", [table_name]) as span:
        while True:
            page = QUERY_PAGE_SIZE if limit is None else min(QUERY_PAGE_SIZE, limit - len(rows))
            response = dynamodb_client().query(**kwargs, Limit=page)
            rows.extend(_plain(row) for row in response["Items"])
            more = "LastEvaluatedKey" in response
            if not more or (limit is not None and len(rows) >= limit):
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        set_annotations(span, {"item_count": len(rows)})
    return rows, more


def query_analysed(table_name: str, after: Position, until_ts: str, limit: int,
                   visible_ts: str | None = None) -> QueryResult:
    """Analysed items with `after < position <= (until_ts, ~)`, at most about `limit` of them.

    With `visible_ts` (now), the query also looks past `until_ts` up to it, without delivering what it
    finds there: the earliest such item's timestamp is `next_settle_ts`.
    """
    started = time.monotonic()
    read_to = max(until_ts, visible_ts or until_ts)
    # Past a whole instant (`~`), start at the next millisecond: that instant's rows would only use up
    # the limit (the key condition's bounds are inclusive).
    lower = iso_ms(parse_iso(after.ts) + MILLISECOND) if after.item == AFTER_ALL else after.ts
    if lower > read_to:
        return QueryResult([], max(after, Position(until_ts, AFTER_ALL)), 0.0)
    rows, more = _query_pages(table_name, lower, read_to, limit)
    settling = [str(row["status_changed_at"]) for row in rows if str(row["status_changed_at"]) > until_ts]
    rows = [row for row in rows if str(row["status_changed_at"]) <= until_ts]
    horizon = Position(until_ts, AFTER_ALL)
    if more and rows and not settling:  # rows come oldest first: a settling one means all up to until_ts were read
        # Cut at a timestamp boundary: the last instant is read whole, by its own query.
        last_ts = max(str(row["status_changed_at"]) for row in rows)
        group, _ = _query_pages(table_name, last_ts, None, None)
        rows = [row for row in rows if str(row["status_changed_at"]) < last_ts] + group
        horizon = Position(last_ts, AFTER_ALL)
    items = sorted((FeedItem.from_row(row) for row in rows), key=lambda item: item.position)
    items = [item for item in items if item.position > after]
    return QueryResult(items, max(horizon, after), (time.monotonic() - started) * 1000,
                       min(settling) if settling else None)


@dataclass(frozen=True)
class FeedRead:
    items: list[FeedItem]  # after the asking cursor, ordered
    horizon: Position
    cache_hit: bool
    trigger: str
    query: QueryResult | None
    cache_hit_rate: float
    cache_entry_count: int
    cache_max_entries: int
    next_settle_ts: str | None  # poll again once this has settled (see `query_analysed`)


Query = Callable[[str, Position, str, int, str | None], QueryResult]


class AnalysedFeed:
    """The environment's window of recent analysed items (thread-safe; one query at a time)."""

    def __init__(self, max_entries: int = CACHE_MAX_ENTRIES, query: Query = query_analysed,
                 clock: Callable[[], float] = time.monotonic):
        self.max_entries = max_entries
        self._query = query
        self._clock = clock
        self._lock = threading.Lock()
        self.marker_version = 0  # every item the change marker announced up to this version was read
        self._entries: list[FeedItem] = []
        self._positions: list[Position] = []
        self._floor: Position | None = None
        self._horizon: Position | None = None
        self._refreshed_at = 0.0
        self._next_settle_ts: str | None = None
        self.lookups = 0
        self.hits = 0

    def has_news(self, marker: Marker) -> bool:
        """Did the marker move past what the window has read?"""
        return marker.version > self.marker_version

    def read(self, table_name: str, cursor: Position, until_ts: str, ttl_s: float,
             visible_ts: str | None = None, marker: Marker | None = None) -> FeedRead:
        """What follows `cursor` up to `until_ts`; `visible_ts` (now) lets the query see what is settling;
        `marker`, read before this call, makes the read a query when it announced news."""
        with self._lock:
            self.lookups += 1
            result: QueryResult | None = None
            if self._horizon is None or self._floor is None:
                trigger = "cold_start"
            elif cursor < self._floor:
                trigger = "behind_window"
            elif self._clock() - self._refreshed_at >= ttl_s:
                trigger = "ttl_expired"
            elif self._next_settle_ts is not None and until_ts >= self._next_settle_ts:
                trigger = "settle_due"
            elif marker is not None and self.has_news(marker):
                trigger = "marker_moved"
            else:
                trigger = "fresh"
                self.hits += 1
            if trigger == "behind_window":
                result = self._query(table_name, cursor, until_ts, self.max_entries, visible_ts)
                return self._answer(result.items, result.horizon, trigger, result)
            entries = self._entries
            if trigger == "cold_start":
                result = self._query(table_name, cursor, until_ts, self.max_entries, visible_ts)
                self._floor, entries = cursor, result.items
            elif trigger in ("ttl_expired", "settle_due", "marker_moved"):
                assert self._horizon is not None
                result = self._query(table_name, self._horizon, until_ts, self.max_entries, visible_ts)
                entries = self._entries + result.items
            if result is not None:
                self._horizon, self._refreshed_at = result.horizon, self._clock()
                self._next_settle_ts = result.next_settle_ts
                if marker is not None:  # read before this query: what it announced is read or settling
                    self.marker_version = max(self.marker_version, marker.version)
            assert self._horizon is not None
            # The asking stream is answered from everything read, before the window evicts any of it.
            positions = self._positions if entries is self._entries else [item.position for item in entries]
            start = bisect.bisect_right(positions, cursor)
            answer = entries[start:]
            if entries is not self._entries:
                self._store(entries)
            return self._answer(answer, self._horizon, trigger, result)

    def _store(self, entries: list[FeedItem]) -> None:
        """Keep the newest `max_entries`; the floor rises past what is evicted (`behind_window` then)."""
        dropped = len(entries) - self.max_entries
        if dropped > 0:
            self._floor = entries[dropped - 1].position
            entries = entries[dropped:]
        self._entries = entries
        self._positions = [item.position for item in entries]

    def _answer(self, items: list[FeedItem], horizon: Position, trigger: str, result: QueryResult | None) -> FeedRead:
        next_settle_ts = result.next_settle_ts if trigger == "behind_window" and result else self._next_settle_ts
        return FeedRead(items, horizon, trigger == "fresh", trigger, result,
                        round(self.hits / self.lookups, 4), len(self._entries), self.max_entries, next_settle_ts)


FEED = AnalysedFeed()
