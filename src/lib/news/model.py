"""News items as stored in the `news` table, their dedup key, and time-series buckets.

The shapes follow specs/contracts.md ("Data model"): timestamps are ISO-8601 UTC strings with
milliseconds (they sort as strings), `item_id` is the first 32 hex of sha256 of the normalised
headline and the publish date.

Example:
    >>> item_id("Apple beats  estimates!", dt.date(2026, 1, 5)) == item_id("apple beats estimates", dt.date(2026, 1, 5))
    True
    >>> iso_ms(dt.datetime(2026, 1, 5, 14, 30, 1, 234567, tzinfo=dt.UTC))
    '2026-01-05T14:30:01.234Z'
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

ITEM_TTL = dt.timedelta(days=30)
# The news table's change marker (issue 19): one item the analysis function bumps after each score
# (`feed_version` +1, `changed_at`) and the SSE function reads instead of querying the index each
# poll. Not a news item: no `status`, `ticker` or `sentiment_label`, so no index holds it.
FEED_MARKER_KEY = {"item_id": "feed#analysed", "published_at": "marker"}
SOURCES = ("tiingo", "finnhub")


class ItemStatus(StrEnum):
    PENDING = "pending"
    ANALYZED = "analyzed"


class Resolution(StrEnum):
    """Time-series resolutions, each with its bucket width and retention (contracts: `timeseries`)."""

    ONE_MINUTE = "1m"
    FIVE_MINUTES = "5m"
    ONE_HOUR = "1h"
    ONE_DAY = "24h"

    @property
    def width(self) -> dt.timedelta:
        return _WIDTHS[self]

    @property
    def retention(self) -> dt.timedelta:
        return _RETENTIONS[self]

    def bucket_start(self, moment: dt.datetime) -> dt.datetime:
        """The start of the bucket holding `moment` (buckets are aligned on the UTC epoch)."""
        seconds = int(self.width.total_seconds())
        epoch = int(moment.astimezone(dt.UTC).timestamp())
        return dt.datetime.fromtimestamp(epoch - epoch % seconds, dt.UTC)


_WIDTHS = {
    Resolution.ONE_MINUTE: dt.timedelta(minutes=1),
    Resolution.FIVE_MINUTES: dt.timedelta(minutes=5),
    Resolution.ONE_HOUR: dt.timedelta(hours=1),
    Resolution.ONE_DAY: dt.timedelta(days=1),
}
_RETENTIONS = {
    Resolution.ONE_MINUTE: dt.timedelta(days=1),
    Resolution.FIVE_MINUTES: dt.timedelta(days=7),
    Resolution.ONE_HOUR: dt.timedelta(days=30),
    Resolution.ONE_DAY: dt.timedelta(days=400),
}


class InvalidTimestampError(ValueError):
    """A timestamp that is not an ISO-8601 instant with a UTC offset."""


def iso_ms(moment: dt.datetime) -> str:
    """`2026-11-25T08:00:00.123Z`: the one timestamp format of the data model."""
    if moment.tzinfo is None:
        raise InvalidTimestampError("naive datetime: the data model stores UTC instants only")
    utc = moment.astimezone(dt.UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def parse_iso(value: str) -> dt.datetime:
    """Parse an ISO-8601 instant that carries its offset (`Z` or `+hh:mm`); naive strings are refused."""
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except (TypeError, ValueError) as error:
        raise InvalidTimestampError(f"not an ISO-8601 timestamp: {str(value)[:40]!r}") from error
    if moment.tzinfo is None:
        raise InvalidTimestampError(f"timestamp without UTC offset: {value[:40]!r}")
    return moment.astimezone(dt.UTC)


_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def normalise_headline(headline: str) -> str:
    """Case, accents' encoding, punctuation and spacing removed: the same story reads the same."""
    folded = unicodedata.normalize("NFKC", headline).casefold()
    return _NOT_WORD.sub(" ", folded).strip()


def item_id(headline: str, published: dt.date | dt.datetime) -> str:
    """The dedup key: first 32 hex of sha256(normalised headline + "|" + publish date `YYYY-MM-DD`)."""
    day = published.astimezone(dt.UTC).date() if isinstance(published, dt.datetime) else published
    digest = hashlib.sha256(f"{normalise_headline(headline)}|{day.isoformat()}".encode())
    return digest.hexdigest()[:32]


@dataclass(frozen=True)
class Article:
    """One story as a news source reported it, already validated and normalised to UTC."""

    source: str
    ticker: str
    headline: str
    summary: str
    url: str
    published_at: dt.datetime

    @property
    def item_id(self) -> str:
        return item_id(self.headline, self.published_at)


@dataclass(frozen=True)
class NewsItem:
    """A row of the `news` table."""

    item_id: str
    published_at: str
    ticker: str
    headline: str
    summary: str
    source: str
    url: str
    status: ItemStatus
    status_changed_at: str
    ingested_at: str
    expires_at: int

    @classmethod
    def from_article(cls, article: Article, ingested_at: dt.datetime) -> NewsItem:
        stamp = iso_ms(ingested_at)
        return cls(
            item_id=article.item_id,
            published_at=iso_ms(article.published_at),
            ticker=article.ticker,
            headline=article.headline,
            summary=article.summary,
            source=article.source,
            url=article.url,
            status=ItemStatus.PENDING,
            status_changed_at=stamp,
            ingested_at=stamp,
            expires_at=int((ingested_at + ITEM_TTL).timestamp()),
        )

    def to_item(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id, "published_at": self.published_at, "ticker": self.ticker,
            "headline": self.headline, "summary": self.summary, "source": self.source, "url": self.url,
            "status": str(self.status), "status_changed_at": self.status_changed_at,
            "ingested_at": self.ingested_at, "expires_at": self.expires_at,
        }

    @property
    def key(self) -> dict[str, str]:
        return {"item_id": self.item_id, "published_at": self.published_at}

    def message(self) -> dict[str, str]:
        """The `news_items` topic message (contracts: Messages): analysis reads the item itself."""
        return {"item_id": self.item_id, "published_at": self.published_at}


def sentiment_label(score: float) -> str:
    """contracts.md: positive (compound >= 0.05), negative (<= -0.05), else neutral."""
    if score >= 0.05:
        return "positive"
    if score <= -0.05:
        return "negative"
    return "neutral"


def as_decimal(value: float, places: int = 4) -> Decimal:
    """DynamoDB numbers are Decimals; scores keep 4 places (VADER's own precision)."""
    return Decimal(str(round(value, places)))
